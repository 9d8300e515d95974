"""A prototype, not used by the library: the copy NTM's memory part with the
batch as the minor (last) axis of every array, memory [M, N, B], so that
elementwise work and reductions over rows run across the batch in vector
lanes (RESULTS.md, "Throughput", tried and not kept). One read and one
write head, tanh keys and adds, shifts -1..+1, as the copy defaults.

    PYTHONPATH=. python docs/throughput/batch_minor_prototype.py B

Prints microseconds per time step of 22 steps, forward and backward
(autodiff), to set against docs/throughput/memory_step_timing.py.
"""
import ntm_jax.training.devices as devices

devices.tune_cpu_flags()

import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

# The timing loop of the library's layout (this script's directory is on
# sys.path when it runs).
from memory_step_timing import STEPS, per_step_us  # noqa: E402

ROWS, WIDTH, SHIFTS, EPS = 32, 20, 3, 1e-8


def _head(raw):
  """raw [WIDTH + 3 + SHIFTS, B] -> constrained addressing parameters."""
  m = WIDTH
  return dict(key=jnp.tanh(raw[:m]), beta=jax.nn.softplus(raw[m]),
              gate=jax.nn.sigmoid(raw[m + 1]),
              shifts=jax.nn.softmax(raw[m + 2:m + 2 + SHIFTS], axis=0),
              gamma=1.0 + jax.nn.softplus(raw[m + 2 + SHIFTS]))


def _address(memory, w_prev, head):
  """memory [M, N, B], w_prev [N, B] -> [N, B] (eqs. 5-9)."""
  dots = jnp.sum(head["key"][:, None, :] * memory, 0)
  cos = dots / (jnp.sqrt(jnp.sum(memory * memory, 0) + EPS)
                * jnp.sqrt(jnp.sum(head["key"] ** 2, 0) + EPS))
  w = jax.nn.softmax(head["beta"] * cos, axis=0)
  w = head["gate"] * w + (1.0 - head["gate"]) * w_prev
  w = sum(head["shifts"][d] * jnp.roll(w, d - 1, 0) for d in range(SHIFTS))
  return jax.nn.softmax(head["gamma"] * jnp.log(w + EPS), axis=0)


def step(carry, raw):
  """Write, then read, as `memory_step.step`; raw [P, B]."""
  memory, read_w, write_w = carry
  a = WIDTH + 3 + SHIFTS
  raw = jnp.clip(raw, -20.0, 20.0)
  read, write = _head(raw[:a]), _head(raw[a:2 * a])
  erase = jax.nn.sigmoid(raw[2 * a:2 * a + WIDTH])
  add = jnp.tanh(raw[2 * a + WIDTH:2 * a + 2 * WIDTH])
  write_w = _address(memory, write_w, write)
  memory = memory * (1.0 - erase[:, None, :] * write_w[None]) + add[:, None, :] * write_w[None]
  read_w = _address(memory, read_w, read)
  return (memory, read_w, write_w), jnp.sum(read_w[None] * memory, 1)


def main():
  batch = int(sys.argv[1])
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  carry = (0.3 * jax.random.normal(keys[0], (WIDTH, ROWS, batch)),
           jax.nn.softmax(jax.random.normal(keys[1], (ROWS, batch)), 0),
           jax.nn.softmax(jax.random.normal(keys[2], (ROWS, batch)), 0))
  raws = 3.0 * jax.random.normal(keys[3], (STEPS, 2 * (WIDTH + 3 + SHIFTS) + 2 * WIDTH, batch))
  carries = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (STEPS,) + a.shape) + 0, carry)
  new_carry = lambda c, r: step(c, r)[0]

  @jax.jit
  def forward(carry, raws):
    return jax.lax.fori_loop(0, STEPS, lambda t, c: new_carry(c, raws[t]), carry)

  @jax.jit
  def backward(carries, raws, ct):
    def body(i, loop):
      ct, total = loop
      t = STEPS - 1 - i
      _, vjp = jax.vjp(new_carry, jax.tree_util.tree_map(lambda a: a[t], carries), raws[t])
      ct, ct_raw = vjp(ct)
      return ct, total + ct_raw
    return jax.lax.fori_loop(0, STEPS, body, (ct, jnp.zeros_like(raws[0])))

  print(f"batch {batch} minor, us per time step: forward {per_step_us(forward, carry, raws):.1f}, "
        f"backward (autodiff) {per_step_us(backward, carries, raws, carry):.1f}")


if __name__ == "__main__":
  main()
