"""Times the memory part of the copy NTM's step alone (RESULTS.md,
"Throughput"): 22 time steps in a `fori_loop`, forward and backward, on one
device, per time step of a batch of B sequences.

    PYTHONPATH=. python docs/throughput/memory_step_timing.py B [ROWS]

Prints microseconds per time step for: the forward; the backward by
autodiff (`jax.vjp` of the step, which recomputes its forward); the
hand-written `memory_step.step_vjp` recomputing its stages; the same with
the stages stored by the forward (what `ntm_sequence` does); and that
forward, which stores them.
"""
import ntm_jax.training.devices as devices

devices.tune_cpu_flags()

import functools  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from ntm_jax import NTMConfig  # noqa: E402
import ntm_jax.models.heads as heads  # noqa: E402
from ntm_jax.models import memory_step  # noqa: E402

STEPS = 22  # the copy task's mean training sequence, 2 x 10.5 + 1 steps


def _inputs(batch, rows):
  config = NTMConfig(9, 8, memory_rows=rows)
  keys = jax.random.split(jax.random.PRNGKey(0), 5)
  m = config.memory_width
  carry = (0.3 * jax.random.normal(keys[0], (batch, m, rows)),
           jax.nn.softmax(jax.random.normal(keys[1], (batch, 1, rows))),
           jax.nn.softmax(jax.random.normal(keys[2], (batch, 1, rows))),
           jax.random.normal(keys[3], (batch, 1, m)))
  raws = 3.0 * jax.random.normal(keys[4], (STEPS, batch, heads.head_output_size(config)))
  return config, carry, raws


def per_step_us(fn, *args, repeats=200):
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(5):
    start = time.perf_counter()
    for _ in range(repeats):
      out = fn(*args)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - start) / repeats / STEPS * 1e6)
  return best


def main():
  batch = int(sys.argv[1])
  rows = int(sys.argv[2]) if len(sys.argv) > 2 else 32
  config, carry, raws = _inputs(batch, rows)
  step = jax.vmap(functools.partial(memory_step.step, config))
  new_carry = lambda c, r: step(c, r)[0]
  carries = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (STEPS,) + a.shape) + 0, carry)
  stages = jax.vmap(step)(carries, raws)[1]
  at = lambda tree, t: jax.tree_util.tree_map(lambda a: a[t], tree)

  @jax.jit
  def forward(carry, raws):
    return jax.lax.fori_loop(0, STEPS, lambda t, c: new_carry(c, raws[t]), carry)

  @jax.jit
  def forward_storing(carry, raws, stored):
    def body(t, loop):
      c, stored = loop
      c, s = step(c, raws[t])
      return c, jax.tree_util.tree_map(lambda a, v: a.at[t].set(v), stored, s)
    return jax.lax.fori_loop(0, STEPS, body, (carry, stored))

  def backward(kind):
    @jax.jit
    def run(carries, raws, ct, stored):
      def body(i, loop):
        ct, total = loop
        t = STEPS - 1 - i
        if kind == "autodiff":
          _, vjp = jax.vjp(new_carry, at(carries, t), raws[t])
          ct, ct_raw = vjp(ct)
        else:
          ct, ct_raw = memory_step.step_vjp_batch(
              config, at(carries, t), raws[t], ct,
              at(stored, t) if kind == "stored" else None)
        return tuple(ct), total + ct_raw
      return jax.lax.fori_loop(0, STEPS, body, (ct, jnp.zeros_like(raws[0])))
    return run

  print(f"batch {batch}, {rows} rows, us per time step:")
  print(f"  forward                      {per_step_us(forward, carry, raws):7.1f}")
  for kind in ("autodiff", "recomputed", "stored"):
    print(f"  backward, {kind:18s} "
          f"{per_step_us(backward(kind), carries, raws, carry, stages):7.1f}")
  print(f"  forward storing the stages   {per_step_us(forward_storing, carry, raws, stages):7.1f}")


if __name__ == "__main__":
  main()
