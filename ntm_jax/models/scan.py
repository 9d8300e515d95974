"""`dynamic_scan`: a `jax.lax.scan` that runs only a traced number of steps.

One compiled program serves every sequence length up to a static maximum,
and, unlike a padded scan, it does not pay for the padding: the forward and
backward passes are while loops of `length` iterations. The backward pass is
hand-written (`jax.custom_vjp`): it keeps every step's input carry and
recomputes each step's forward inside `jax.vjp`, as `jax.checkpoint` around a
scan's step would, so the step function needs no `jax.checkpoint` of its own.

Under `jax.vmap`, an unbatched `length` (the same for every vmapped example)
keeps the loops' trip count at `length`. A batched `length` still gives each
example its own truncated result, but the loops then run to the largest
length of the batch, discarding the finished examples' steps.
"""
import jax
import jax.numpy as jnp

__all__ = ["at_step", "dynamic_scan", "set_step"]


def _zeros_like_stacked(tree, steps):
  """Zeros of shape [steps, *leaf.shape] for every leaf of a shape tree."""
  return jax.tree_util.tree_map(
      lambda a: jnp.zeros((steps,) + tuple(a.shape), a.dtype), tree)


def at_step(tree, t):
  """Entry t of every leaf's leading axis."""
  return jax.tree_util.tree_map(
      lambda a: jax.lax.dynamic_index_in_dim(a, t, keepdims=False), tree)


def set_step(tree, t, values):
  """Writes `values` at entry t of every leaf's leading axis."""
  return jax.tree_util.tree_map(
      lambda a, v: jax.lax.dynamic_update_index_in_dim(a, v.astype(a.dtype), t, 0),
      tree, values)


def _forward(step_fn, params, init_carry, xs, length, keep_carries):
  """The loop: (final carry, ys [T_max, ...], carries [T_max, ...] or None)."""
  steps = jax.tree_util.tree_leaves(xs)[0].shape[0]
  y_shape = jax.eval_shape(step_fn, params, init_carry, at_step(xs, 0))[1]
  ys = _zeros_like_stacked(y_shape, steps)
  carries = _zeros_like_stacked(init_carry, steps) if keep_carries else None

  def body(t, loop):
    carry, ys, carries = loop
    if keep_carries:
      carries = set_step(carries, t, carry)
    carry, y = step_fn(params, carry, at_step(xs, t))
    return carry, set_step(ys, t, y), carries

  # fori_loop with a traced bound lowers to a while loop of `length` steps.
  return jax.lax.fori_loop(0, length, body, (init_carry, ys, carries))


def dynamic_scan(step_fn, params, init_carry, xs, length):
  """Scans `step_fn` over the first `length` entries of xs.

  Args:
    step_fn: (params, carry, x) -> (carry, y); a pure function of its
      arguments (closing over no traced values), carry of fixed shape and
      floating dtype.
    params: pytree, the step's parameters (differentiable).
    init_carry: pytree, the carry before step 0 (differentiable).
    xs: pytree of [T_max, ...] arrays, the per-step inputs (differentiable).
    length: int32 scalar, possibly traced, 0 <= length <= T_max: the number
      of steps run. Not differentiable.

  Returns:
    (carry after `length` steps, ys): ys is a pytree of [T_max, ...] arrays,
    step t's y for t < length and exactly zero from `length` on. Same values
    as `jax.lax.scan(lambda c, x: step_fn(params, c, x), init_carry,
    xs[:length])`, with ys zero-padded. Reverse-mode differentiable w.r.t.
    params, init_carry and xs; the cotangents of ys past `length` are
    ignored (those ys are constant zeros), and steps past `length` are never
    run, so they cannot produce NaNs in the gradients.
  """
  length = jnp.asarray(length, jnp.int32)

  @jax.custom_vjp
  def run(params, init_carry, xs, length):
    carry, ys, _ = _forward(step_fn, params, init_carry, xs, length, False)
    return carry, ys

  def run_fwd(params, init_carry, xs, length):
    carry, ys, carries = _forward(step_fn, params, init_carry, xs, length, True)
    return (carry, ys), (params, carries, xs, length)

  def run_bwd(residuals, cotangents):
    params, carries, xs, length = residuals
    ct_carry, ct_ys = cotangents
    zeros = lambda tree: jax.tree_util.tree_map(jnp.zeros_like, tree)

    def body(i, loop):
      ct_params, ct_carry, ct_xs = loop
      t = length - 1 - i
      _, vjp = jax.vjp(step_fn, params, at_step(carries, t), at_step(xs, t))
      d_params, ct_carry, d_x = vjp((ct_carry, at_step(ct_ys, t)))
      ct_params = jax.tree_util.tree_map(jnp.add, ct_params, d_params)
      return ct_params, ct_carry, set_step(ct_xs, t, d_x)

    ct_params, ct_carry, ct_xs = jax.lax.fori_loop(
        0, length, body, (zeros(params), ct_carry, zeros(xs)))
    return ct_params, ct_carry, ct_xs, None

  run.defvjp(run_fwd, run_bwd)
  return run(params, init_carry, xs, length)
