"""The prototype CPU kernel of this folder (memory_kernel.py, memory_step.cc;
`python -m pytest docs/throughput/memory_kernel`) against the XLA path it replaces (memory_step.step,
itself checked against the paper's operations composed by hand) and against
autodiff of that path, saturated heads and degenerate memories included."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntm_jax
import ntm_jax.models.heads as heads
from ntm_jax.models import memory_step

from . import memory_kernel

pytestmark = pytest.mark.skipif(
    jax.default_backend() != "cpu" or memory_kernel._load()[0] is None,
    reason=f"memory kernel unavailable: {memory_kernel.status()}")

CASES = {
    "defaults": dict(),
    "relu keys, linear adds, 2 read and 2 write heads": dict(
        key_activation="relu", add_activation="linear", read_heads=2, write_heads=2),
    "shifts 0..+2 only": dict(shift_range=5, forward_only_shift=True),
    "shifts -3..+3, 3 write heads": dict(shift_range=7, write_heads=3),
}


def _setup(kw, batch=(5,), seed=0, raw_scale=3.0, rows=10, width=6):
  config = ntm_jax.NTMConfig(input_size=3, output_size=3, memory_rows=rows,
                             memory_width=width, **kw)
  keys = jax.random.split(jax.random.PRNGKey(seed), 5)
  r, w = config.read_heads, config.write_heads
  carry = (0.5 * jax.random.normal(keys[0], batch + (width, rows)),
           jax.nn.softmax(jax.random.normal(keys[1], batch + (r, rows))),
           jax.nn.softmax(jax.random.normal(keys[2], batch + (w, rows))),
           jax.random.normal(keys[3], batch + (r, width)))
  raw = raw_scale * jax.random.normal(keys[4], batch + (heads.head_output_size(config),))
  return config, carry, raw


def _cotangents(carry, seed=9):
  keys = jax.random.split(jax.random.PRNGKey(seed), len(carry))
  return tuple(jax.random.normal(k, a.shape) for k, a in zip(keys, carry))


def _xla_step(config, carry, raw):
  return jax.vmap(lambda c, r: memory_step.step(config, c, r)[0])(carry, raw)


def _xla_vjp(config, carry, raw, ct):
  def one(c, r, t):
    return jax.vjp(lambda c, r: memory_step.step(config, c, r)[0], c, r)[1](t)
  return jax.vmap(one)(carry, raw, ct)


def _kernel_step(config, carry, raw, save=False):
  """The kernel on the library's layout ([B, ...] first) by way of its own."""
  new, saved = memory_kernel.step_batch(config, memory_kernel.to_lanes(carry), raw, save)
  return memory_kernel.from_lanes(new), saved


def _kernel_vjp(config, carry, raw, ct):
  lanes = memory_kernel.to_lanes(carry)
  saved = memory_kernel.step_batch(config, lanes, raw, save=True)[1]
  ct_carry, ct_raw = memory_kernel.step_vjp_batch(config, lanes, raw, saved,
                                                  memory_kernel.to_lanes(ct))
  return memory_kernel.from_lanes(ct_carry), ct_raw


def _close(got, expected, rtol, atol):
  for g, e in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", list(CASES))
def test_forward_equals_the_xla_step(case):
  config, carry, raw = _setup(CASES[case])
  got = jax.jit(lambda c, r: _kernel_step(config, c, r)[0])(carry, raw)
  _close(got, _xla_step(config, carry, raw), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_vjp_equals_autodiff_of_the_xla_step(case):
  config, carry, raw = _setup(CASES[case])
  ct = _cotangents(carry)
  got = jax.jit(lambda c, r, t: _kernel_vjp(config, c, r, t))(carry, raw, ct)
  _close(got, _xla_vjp(config, carry, raw, ct), rtol=2e-4, atol=2e-5)


def test_the_paper_sized_memory():
  config, carry, raw = _setup({}, batch=(3,), rows=128, width=20)
  ct = _cotangents(carry)
  _close(_kernel_step(config, carry, raw)[0], _xla_step(config, carry, raw),
         rtol=2e-5, atol=2e-6)
  _close(_kernel_vjp(config, carry, raw, ct), _xla_vjp(config, carry, raw, ct),
         rtol=2e-4, atol=2e-5)


def test_vmap_over_seeds_equals_each_seed_alone():
  config, carry, raw = _setup({}, batch=(2, 3))
  ct = _cotangents(carry)
  vmapped = jax.vmap(lambda c, r, t: _kernel_vjp(config, c, r, t))(carry, raw, ct)
  for seed in range(2):
    alone = _kernel_vjp(config, *jax.tree_util.tree_map(lambda a: a[seed], (carry, raw, ct)))
    for g, e in zip(jax.tree_util.tree_leaves(vmapped), jax.tree_util.tree_leaves(alone)):
      np.testing.assert_array_equal(g[seed], e)


@pytest.mark.parametrize("batch", [8, 5])
def test_a_sequence_gets_the_same_bits_in_any_lane_and_beside_any_neighbours(batch):
  # Batch 8 runs the kernel specialised for 8 lanes, batch 5 the general
  # one; each sequence alone runs the general one with a single lane.
  config, carry, raw = _setup({}, batch=(batch,))
  ct = _cotangents(carry)
  together = (_kernel_step(config, carry, raw, save=True), _kernel_vjp(config, carry, raw, ct))
  for i in range(batch):
    one = lambda tree: jax.tree_util.tree_map(lambda a: a[i:i + 1], tree)
    alone = (_kernel_step(config, one(carry), one(raw), save=True),
             _kernel_vjp(config, one(carry), one(raw), one(ct)))
    for g, e in zip(jax.tree_util.tree_leaves(together), jax.tree_util.tree_leaves(alone)):
      g = g[..., i:i + 1] if g.shape[-1] == batch and g.shape[0] != batch else g[i:i + 1]
      np.testing.assert_array_equal(g, e)


def test_saturated_heads_zero_memory_and_zero_keys_stay_finite_and_match():
  config, carry, raw = _setup({}, raw_scale=200.0)  # 10x past the clip
  columns = carry[0].at[0].set(0.0)  # sequence 0: an empty memory
  raw = raw.at[1, :config.memory_width].set(0.0)  # sequence 1: a zero read key
  carry = (columns,) + carry[1:]
  ct = _cotangents(carry)
  got = _kernel_vjp(config, carry, raw, ct)
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(got))
  _close(got, _xla_vjp(config, carry, raw, ct), rtol=2e-4, atol=2e-5)
  # Clipped raw outputs pass no gradient (jnp.clip's rule).
  clipped = np.abs(np.asarray(raw)) > config.head_clip
  assert clipped.any() and np.all(np.asarray(got[1])[clipped] == 0.0)


def test_nan_in_the_head_outputs_comes_out_as_nan():
  config, carry, raw = _setup({})
  raw = raw.at[2, 0].set(jnp.nan)
  new = _kernel_step(config, carry, raw)[0]
  assert not np.all(np.isfinite(np.asarray(new[1][2])))
  assert np.all(np.isfinite(np.asarray(new[1][0])))  # the other sequences are untouched


def test_status_names_the_kernel():
  assert memory_kernel.status().startswith("cpu kernel")
