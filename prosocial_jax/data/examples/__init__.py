"""Records → (context, target) example dicts for every task, in the formats of
prosocial_jax.data.formatting. Pure Python, so they are easy to check by hand;
tasks/ turns them into tf.data."""
