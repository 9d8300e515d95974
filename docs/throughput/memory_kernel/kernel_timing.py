"""docs/throughput/memory_step_timing.py's measurements of the XLA path,
then the prototype kernel of this folder on the same inputs (RESULTS.md,
"Throughput", tried and not kept).

    PYTHONPATH=. python docs/throughput/memory_kernel/kernel_timing.py B [ROWS]

The kernel keeps the batch in its vector lanes (`memory_kernel.to_lanes`).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(1, os.path.dirname(os.path.dirname(__file__)))
import memory_step_timing as base  # noqa: E402  (tunes the XLA flags first)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import memory_kernel  # noqa: E402


def main():
  base.main()
  batch = int(sys.argv[1])
  rows = int(sys.argv[2]) if len(sys.argv) > 2 else 32
  config, carry, raws = base._inputs(batch, rows)
  steps = base.STEPS
  lane_carry = memory_kernel.to_lanes(carry)
  lane_carries = jax.tree_util.tree_map(
      lambda a: jnp.broadcast_to(a, (steps,) + a.shape) + 0, lane_carry)
  saved = jax.vmap(lambda c, r: memory_kernel.step_batch(config, c, r, save=True)[1])(
      lane_carries, raws)
  at = lambda tree, t: jax.tree_util.tree_map(lambda a: a[t], tree)

  @jax.jit
  def forward(carry, raws):
    return jax.lax.fori_loop(
        0, steps, lambda t, c: memory_kernel.step_batch(config, c, raws[t])[0], carry)

  @jax.jit
  def forward_saving(carry, raws, stored):
    def body(t, loop):
      c, stored = loop
      c, s = memory_kernel.step_batch(config, c, raws[t], save=True)
      return c, stored.at[t].set(s)
    return jax.lax.fori_loop(0, steps, body, (carry, stored))

  @jax.jit
  def backward(carries, raws, ct, stored):
    def body(i, loop):
      ct, total = loop
      t = steps - 1 - i
      ct, ct_raw = memory_kernel.step_vjp_batch(config, at(carries, t), raws[t],
                                                at(stored, t), ct)
      return tuple(ct), total + ct_raw
    return jax.lax.fori_loop(0, steps, body, (ct, jnp.zeros_like(raws[0])))

  print(f"the CPU kernel ({memory_kernel.status()}), us per time step:")
  print(f"  forward                      {base.per_step_us(forward, lane_carry, raws):7.1f}")
  print(f"  forward saving               "
        f"{base.per_step_us(forward_saving, lane_carry, raws, saved):7.1f}")
  print(f"  backward from what it saved  "
        f"{base.per_step_us(backward, lane_carries, raws, lane_carry, saved):7.1f}")


if __name__ == "__main__":
  main()
