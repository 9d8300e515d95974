"""Tests of ntm_jax.models: init / apply of the NTM and of the LSTM baseline.

Compilation dominates the runtime, so the configs are tiny, params are built
once per module and every jitted apply is cached per (config, static args).
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntm_jax
import ntm_jax.pretrained
import ntm_jax.tasks
from ntm_jax import NTMCell, NTMConfig

B, T = 2, 5
CFG = NTMConfig(input_size=3, output_size=2, controller_size=16, memory_rows=8,
                memory_width=4)
# Two read heads and a memory init far above the cosine epsilon: used for the
# plain-numpy reference of the whole forward pass.
CFG_REF = dataclasses.replace(CFG, read_heads=2, memory_init_value=0.5)
CFG_MULTI = dataclasses.replace(CFG, read_heads=2, write_heads=2, memory_init_value=0.5)
CFG_LSTM = dataclasses.replace(CFG, controller="lstm")
CFG_LEARNED = dataclasses.replace(CFG, memory_init="learned")
CFG_RANDOM = dataclasses.replace(CFG, memory_init="random")
CFG_FIRST_ROW = dataclasses.replace(CFG, memory_init="first_row")
CFG_FORWARD = dataclasses.replace(CFG, forward_only_shift=True)
BASELINE = ntm_jax.LSTMConfig(input_size=3, output_size=2, size=8, layers=2)
# Configs whose params are shaped exactly like another config's (they change
# only the computation): they reuse that config's params, saving a compile each.
_SAME_PARAMS = {CFG_RANDOM: CFG, CFG_FORWARD: CFG}


@functools.lru_cache(maxsize=None)
def _jitted(config, **static):
  """jax.jit(apply) with the config and static arguments closed over."""
  return jax.jit(functools.partial(ntm_jax.apply, config=config, **static))


# One XLA compile per config is much cheaper than flax's op-by-op eager init.
_init = jax.jit(ntm_jax.init, static_argnums=1)


@functools.lru_cache(maxsize=None)
def _params(config, seed=0):
  base = _SAME_PARAMS.get(config)
  if base is None:
    return _init(jax.random.PRNGKey(seed), config)
  p = _params(base, seed)
  shapes = jax.eval_shape(lambda k: ntm_jax.init(k, config), jax.random.PRNGKey(seed))
  assert (jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), shapes)
          == jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), p))
  return p


@functools.lru_cache(maxsize=None)
def _traced_run(config, memory_size=None):
  """Jitted apply with the full trace, memory included, on the shared inputs."""
  fn = _jitted(config, memory_size=memory_size, return_trace=True, trace_memory=True)
  return fn(_params(config), _inputs())


@functools.lru_cache(maxsize=None)
def _inputs():
  return jax.random.normal(jax.random.PRNGKey(1), (B, T, 3))


def _finite(tree):
  return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(tree))


def _assert_distributions(w):
  w = np.asarray(w)
  assert np.all(w >= 0.0)
  np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def params():
  return _params(CFG)


@pytest.fixture(scope="module")
def inputs():
  return _inputs()


@pytest.fixture(scope="module")
def eager_run(params, inputs):
  """The un-jitted apply, with the full trace."""
  return ntm_jax.apply(params, inputs, CFG, return_trace=True, trace_memory=True)


@pytest.fixture(scope="module")
def logits(params, inputs):
  return _jitted(CFG)(params, inputs)[0]


# --------------------------------------------------------------------------
# Config.
# --------------------------------------------------------------------------


def test_paper_default_config():
  cfg = NTMConfig(input_size=10, output_size=8)
  assert (cfg.memory_rows, cfg.memory_width) == (128, 20)
  assert (cfg.read_heads, cfg.write_heads) == (1, 1)
  assert (cfg.controller, cfg.controller_size, cfg.controller_layers) == ("ff", 100, 1)
  assert cfg.shift_range == 3 and not cfg.forward_only_shift
  assert cfg.memory_init == "constant" and cfg.memory_init_value == 1e-6
  # Shapes only: eval_shape traces init and apply without compiling them.
  p = jax.eval_shape(lambda k: ntm_jax.init(k, cfg), jax.random.PRNGKey(0))
  # controller (10 + 20) * 100 + 100; heads 100 * 92 + 92 with
  # 92 = 2 * (20 + 1 + 1 + 3 + 1) + 2 * 20; output (100 + 20) * 8 + 8; initial read 20.
  assert ntm_jax.param_count(p) == 3100 + 9292 + 968 + 20
  out, trace = jax.eval_shape(
      functools.partial(ntm_jax.apply, config=cfg, return_trace=True, trace_memory=True),
      p, jnp.ones((1, 2, 10)))
  assert out.shape == (1, 2, 8)
  assert trace["read_weights"].shape == (1, 2, 1, 128)
  assert trace["write_weights"].shape == (1, 2, 1, 128)
  assert trace["memory"].shape == (1, 2, 128, 20)


@pytest.mark.parametrize("kw, field", [
    (dict(shift_range=2), "shift_range"),
    (dict(shift_range=4), "shift_range"),
    (dict(controller="gru"), "controller"),
    (dict(memory_rows=0), "memory_rows"),
    (dict(memory_init="zeros"), "memory_init"),
    (dict(memory_init_value=0.0), "memory_init_value"),
    (dict(memory_rows=2, shift_range=3), "shift_range"),
    (dict(read_heads=0), "read_heads"),
    (dict(input_size=0), "input_size"),
    (dict(controller_activation="gelu"), "controller_activation"),
    (dict(key_activation="sigmoid"), "key_activation"),
    (dict(head_clip=0.0), "head_clip"),
])
def test_invalid_config_raises_one_line_value_error(kw, field):
  base = dict(input_size=3, output_size=2)
  base.update(kw)
  with pytest.raises(ValueError) as excinfo:
    NTMConfig(**base)
  message = str(excinfo.value)
  assert "\n" not in message and message
  assert field in message


@pytest.mark.parametrize("kw", [dict(size=0), dict(layers=0), dict(output_size=0)])
def test_invalid_lstm_config_raises_value_error(kw):
  base = dict(input_size=3, output_size=2)
  base.update(kw)
  with pytest.raises(ValueError) as excinfo:
    ntm_jax.LSTMConfig(**base)
  assert "\n" not in str(excinfo.value)


# --------------------------------------------------------------------------
# Shapes and traces.
# --------------------------------------------------------------------------


def test_apply_output_and_trace_shapes(eager_run):
  out, trace = eager_run
  assert out.shape == (B, T, 2)
  assert set(trace) == {"read_weights", "write_weights", "read_addressing",
                        "write_addressing", "memory"}
  assert trace["read_weights"].shape == (B, T, 1, 8)
  assert trace["write_weights"].shape == (B, T, 1, 8)
  assert trace["memory"].shape == (B, T, 8, 4)
  assert _finite(eager_run)


def test_trace_is_none_without_return_trace_and_has_no_memory_by_default(params, inputs):
  out, trace = _jitted(CFG)(params, inputs)
  assert trace is None
  # Shapes only (no compilation) for the trace without memory.
  _, trace = jax.eval_shape(
      functools.partial(ntm_jax.apply, config=CFG, return_trace=True), params, inputs)
  assert set(trace) == {"read_weights", "write_weights", "read_addressing",
                        "write_addressing"}
  assert trace["read_weights"].shape == (B, T, 1, 8)
  assert trace["read_addressing"].gate.shape == (B, T, 1)
  assert trace["write_addressing"].shift_weights.shape == (B, T, 1, CFG.shift_range)


def test_traced_head_outputs_reproduce_the_traced_weightings(eager_run):
  """Figure 2 run by hand on the traced key, beta, g, shifts and gamma gives
  the traced weightings: the addressing trace is the one each step used."""
  _, trace = eager_run
  memory = np.asarray(trace["memory"])  # after each step's write
  for name, memory_at in (("write", lambda b, t: memory[b, t - 1] if t else None),
                          ("read", lambda b, t: memory[b, t])):
    head, weights = trace[f"{name}_addressing"], np.asarray(trace[f"{name}_weights"])
    for b in range(B):
      for t in range(1, T):  # step 0's previous weighting and memory are the initial ones
        w = ntm_jax.addressing.address(
            memory_at(b, t), weights[b, t - 1, 0], head.key[b, t, 0],
            head.key_strength[b, t, 0], head.gate[b, t, 0], head.shift_weights[b, t, 0],
            head.sharpening[b, t, 0])
        np.testing.assert_allclose(w, weights[b, t, 0], atol=1e-5)
  assert np.all((np.asarray(trace["read_addressing"].gate) >= 0)
                & (np.asarray(trace["read_addressing"].gate) <= 1))
  assert np.all(np.asarray(trace["read_addressing"].sharpening) >= 1)


def test_trace_weightings_are_distributions(eager_run):
  _, trace = eager_run
  _assert_distributions(trace["read_weights"])
  _assert_distributions(trace["write_weights"])


def test_initial_state_is_constant_memory_and_heads_on_row_zero(params):
  state = NTMCell(CFG).apply(params, 8, method=NTMCell.initial_state)
  np.testing.assert_array_equal(state.memory, np.full((8, 4), 1e-6, np.float32))
  np.testing.assert_array_equal(state.read_weights, [[1, 0, 0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(state.write_weights, [[1, 0, 0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(state.read_vectors, params["params"]["initial_read"])
  other = dataclasses.replace(CFG, memory_init_value=0.25)
  state = NTMCell(other).apply(params, 8, method=NTMCell.initial_state)
  np.testing.assert_array_equal(state.memory, np.full((8, 4), 0.25, np.float32))


def test_multiple_read_and_write_heads():
  out, trace = _traced_run(CFG_MULTI)
  assert out.shape == (B, T, 2)
  assert trace["read_weights"].shape == (B, T, 2, 8)
  assert trace["write_weights"].shape == (B, T, 2, 8)
  assert trace["memory"].shape == (B, T, 8, 4)
  _assert_distributions(trace["read_weights"])
  _assert_distributions(trace["write_weights"])
  assert _finite(out)


def test_lstm_controller():
  p = _params(CFG_LSTM)
  lstm = p["params"]["controller"]["lstm_0"]
  # input + read vector + recurrent state, to the four gates
  assert lstm["kernel"].shape == (3 + 4 + 16, 4 * 16)
  out, trace = _traced_run(CFG_LSTM)
  assert out.shape == (B, T, 2) and _finite(out)
  _assert_distributions(trace["read_weights"])
  _assert_distributions(trace["write_weights"])


def test_learned_memory_init():
  p = _params(CFG_LEARNED)
  learned = p["params"]["initial_memory"]
  assert learned.shape == (8, 4)
  state = NTMCell(CFG_LEARNED).apply(p, 8, method=NTMCell.initial_state)
  np.testing.assert_array_equal(state.memory, learned)
  # A larger memory keeps the learned rows and fills the rest with the constant.
  state = NTMCell(CFG_LEARNED).apply(p, 12, method=NTMCell.initial_state)
  np.testing.assert_array_equal(state.memory[:8], learned)
  np.testing.assert_array_equal(state.memory[8:], np.full((4, 4), 1e-6, np.float32))
  out, trace = _traced_run(CFG_LEARNED)
  assert out.shape == (B, T, 2) and _finite(out)
  _assert_distributions(trace["read_weights"])


def test_first_row_memory_init_learns_row_0_alone_at_every_memory_size():
  p = _params(CFG_FIRST_ROW)
  first = p["params"]["initial_first_row"]
  assert first.shape == (1, 4) and np.abs(np.asarray(first)).max() > 0
  for rows in (8, 12, 40):
    state = NTMCell(CFG_FIRST_ROW).apply(p, rows, method=NTMCell.initial_state)
    np.testing.assert_array_equal(state.memory[0], first[0])
    np.testing.assert_array_equal(state.memory[1:], np.full((rows - 1, 4), 1e-6, np.float32))
  # Row 0 is a parameter: the loss reaches it through content addressing.
  x = jnp.ones((1, 6, CFG.input_size))
  grads = jax.grad(lambda q: jnp.sum(ntm_jax.apply(q, x, CFG_FIRST_ROW)[0] ** 2))(p)
  assert np.abs(np.asarray(grads["params"]["initial_first_row"])).max() > 0


def test_still_heads_stay_on_row_0_until_trained_and_zero_heads_wander():
  still = dataclasses.replace(CFG, head_init="still")
  x = jax.random.bernoulli(jax.random.PRNGKey(3), 0.5, (4, 10, CFG.input_size)).astype(jnp.float32)
  on_row_0 = {}
  for cfg in (CFG, still):
    _, trace = ntm_jax.apply(_params(cfg), x, cfg, return_trace=True)
    weights = jnp.concatenate([trace["read_weights"], trace["write_weights"]], axis=2)
    on_row_0[cfg.head_init] = np.asarray(weights[:, -1, :, 0])  # [B, heads] after 10 steps
  # Every head of every sequence still mostly on row 0 after 10 steps ...
  assert on_row_0["still"].min() > 0.5
  # ... where the zero init's heads have moved or spread (8 rows).
  assert on_row_0["zero"].max() < 0.5


def test_random_memory_init_without_an_rng_is_one_fixed_draw():
  p0, p1 = _params(CFG_RANDOM, 0), _init(jax.random.PRNGKey(1), CFG)
  assert "initial_memory" not in p0["params"]
  m0 = np.asarray(NTMCell(CFG_RANDOM).apply(p0, 8, method=NTMCell.initial_state).memory)
  m1 = np.asarray(NTMCell(CFG_RANDOM).apply(p1, 8, method=NTMCell.initial_state).memory)
  assert m0.shape == (8, 4)
  np.testing.assert_array_equal(m0, m1)  # the same memory for every model
  assert len(np.unique(m0)) == m0.size  # not a constant
  assert 0.02 < m0.std() < 0.5
  out, trace = _traced_run(CFG_RANDOM)
  assert out.shape == (B, T, 2) and _finite(out)
  _assert_distributions(trace["write_weights"])


@functools.lru_cache(maxsize=None)
def _apply_with_rng(config):
  return jax.jit(lambda p, x, rng: ntm_jax.apply(p, x, config, rng=rng)[0])


def test_random_memory_init_draws_a_memory_per_sequence_from_the_rng():
  p = _params(CFG_RANDOM)
  twins = jnp.broadcast_to(_inputs()[:1], (2, T, 3))  # two identical sequences
  key = jax.random.PRNGKey(5)
  out = np.asarray(_apply_with_rng(CFG_RANDOM)(p, twins, key))
  assert not np.allclose(out[0], out[1])  # each sequence its own memory
  np.testing.assert_array_equal(out, _apply_with_rng(CFG_RANDOM)(p, twins, key))
  assert not np.allclose(out, _apply_with_rng(CFG_RANDOM)(p, twins, jax.random.PRNGKey(6)))
  # Without an rng both twins start from the same fixed draw.
  fixed = np.asarray(_jitted(CFG_RANDOM)(p, twins)[0])
  np.testing.assert_array_equal(fixed[0], fixed[1])


def test_the_rng_changes_nothing_for_a_constant_memory_init(params):
  twins = jnp.broadcast_to(_inputs()[:1], (2, T, 3))
  out = np.asarray(_apply_with_rng(CFG)(params, twins, jax.random.PRNGKey(5)))
  np.testing.assert_array_equal(out[0], out[1])
  np.testing.assert_array_equal(out, _jitted(CFG)(params, twins)[0])


@pytest.mark.parametrize("config, rows", [(CFG, 8), (BASELINE, None)], ids=["ntm", "lstm"])
def test_get_model_gives_each_config_a_model_whose_cell_steps_like_apply(config, rows):
  model = ntm_jax.models.get_model(config)
  assert isinstance(config, model.config_class)
  assert model.memory_rows(config) == rows
  missing = [name for name in ("cell_class", "cpu_seeds_per_group", "check_memory_size",
                               "forward_flops", "dense_flops") if not hasattr(model, name)]
  assert not missing
  # The cell, stepped by hand over one sequence, gives apply's logits.
  params, x = _params(config), _inputs()[0]
  cell = model.cell_class(config)
  step = jax.jit(lambda state, x_t: cell.apply(params, state, x_t))
  state = cell.apply(params, rows or 1, method=cell.initial_state)
  stepped = []
  for t in range(T):
    state, (logits_t, _) = step(state, x[t])
    stepped.append(logits_t)
  np.testing.assert_allclose(np.stack(stepped), _jitted(config)(params, _inputs())[0][0],
                             atol=1e-5)


def test_get_model_refuses_anything_but_a_model_config():
  with pytest.raises(TypeError, match="config must be one of"):
    ntm_jax.models.get_model(ntm_jax.TrainConfig())


def test_forward_only_shift_model_runs():
  out, trace = _traced_run(CFG_FORWARD)
  assert out.shape == (B, T, 2) and _finite(out)
  _assert_distributions(trace["read_weights"])
  _assert_distributions(trace["write_weights"])


# --------------------------------------------------------------------------
# A plain-numpy reference of the whole forward pass.
# --------------------------------------------------------------------------


def _softplus(x):
  return np.log1p(np.exp(x))


def _non_negative(x, cfg):
  return max(x, 0.0) if cfg.strength_activation == "relu" else _softplus(x)


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _softmax(x):
  e = np.exp(x - x.max())
  return e / e.sum()


def _np_address(memory, w_prev, raw, cfg):
  m, s = cfg.memory_width, cfg.shift_range
  n, k = memory.shape[0], s // 2
  key = np.tanh(raw[:m])
  beta = _non_negative(raw[m], cfg)
  gate = _sigmoid(raw[m + 1])
  shifts = _softmax(raw[m + 2:m + 2 + s])
  gamma = 1.0 + _non_negative(raw[m + 2 + s], cfg)
  cos = memory @ key / (np.linalg.norm(memory, axis=1) * np.linalg.norm(key))
  w = gate * _softmax(beta * cos) + (1.0 - gate) * w_prev
  w = np.array([sum(w[(i - d) % n] * shifts[d + k] for d in range(-k, k + 1))
                for i in range(n)])
  w = w ** gamma
  return w / w.sum()


def _np_ntm(params, x, cfg):
  """One sequence x [T, I] through a 1-layer tanh feed-forward NTM.

  Per step: controller on [x, previous reads]; write heads address the old
  memory; all erases then all adds (paper sec. 3.2); read heads address the
  new memory; output layer on [hidden, reads].
  """
  p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)["params"]
  n, m = cfg.memory_rows, cfg.memory_width
  r, w, s = cfg.read_heads, cfg.write_heads, cfg.shift_range
  a = m + 3 + s
  memory = np.full((n, m), cfg.memory_init_value)
  read_w = np.zeros((r, n))
  read_w[:, 0] = 1.0
  write_w = np.zeros((w, n))
  write_w[:, 0] = 1.0
  reads = p["initial_read"]
  logits, read_trace, write_trace, memory_trace = [], [], [], []
  for xt in np.asarray(x, np.float64):
    ctrl = p["controller"]["Dense_0"]
    hidden = np.tanh(np.concatenate([xt, reads.ravel()]) @ ctrl["kernel"] + ctrl["bias"])
    raw = hidden @ p["heads"]["kernel"] + p["heads"]["bias"]
    raw = np.clip(raw, -cfg.head_clip, cfg.head_clip)
    erase = _sigmoid(raw[(r + w) * a:(r + w) * a + w * m].reshape(w, m))
    add = np.tanh(raw[(r + w) * a + w * m:].reshape(w, m))
    write_w = np.stack([_np_address(memory, write_w[h], raw[(r + h) * a:(r + h + 1) * a],
                                    cfg) for h in range(w)])
    keep = np.ones((n, m))
    for h in range(w):
      keep = keep * (1.0 - np.outer(write_w[h], erase[h]))
    memory = memory * keep + sum(np.outer(write_w[h], add[h]) for h in range(w))
    read_w = np.stack([_np_address(memory, read_w[h], raw[h * a:(h + 1) * a], cfg)
                       for h in range(r)])
    reads = read_w @ memory
    out = p["output"]
    logits.append(np.concatenate([hidden, reads.ravel()]) @ out["kernel"] + out["bias"])
    read_trace.append(read_w)
    write_trace.append(write_w)
    memory_trace.append(memory)
  return (np.stack(logits), np.stack(read_trace), np.stack(write_trace),
          np.stack(memory_trace))


def _compare_with_reference(cfg):
  out, trace = _traced_run(cfg)
  x = _inputs()
  for b in range(B):
    ref_logits, ref_read, ref_write, ref_memory = _np_ntm(_params(cfg), x[b], cfg)
    np.testing.assert_allclose(trace["write_weights"][b], ref_write, atol=1e-4)
    np.testing.assert_allclose(trace["memory"][b], ref_memory, atol=1e-4)
    np.testing.assert_allclose(trace["read_weights"][b], ref_read, atol=1e-4)
    np.testing.assert_allclose(out[b], ref_logits, atol=1e-4)


def test_forward_pass_matches_numpy_reference():
  _compare_with_reference(CFG_REF)


def test_multiple_write_heads_match_paper_erase_all_then_add_all():
  _compare_with_reference(CFG_MULTI)


@pytest.mark.slow  # an opt-in setting; the fast tier keeps the defaults
def test_relu_strengths_match_the_numpy_reference():
  _compare_with_reference(dataclasses.replace(CFG_REF, strength_activation="relu"))


# --------------------------------------------------------------------------
# Transformations: jit, vmap over params, grad, larger memory.
# --------------------------------------------------------------------------


def test_apply_is_jittable(eager_run, params, inputs):
  fn = _jitted(CFG, return_trace=True, trace_memory=True)
  out, trace = fn(params, inputs)
  np.testing.assert_allclose(out, eager_run[0], atol=1e-5)
  np.testing.assert_allclose(trace["memory"], eager_run[1]["memory"], atol=1e-5)
  np.testing.assert_allclose(trace["read_weights"], eager_run[1]["read_weights"],
                             atol=1e-5)


def test_apply_vmaps_over_a_leading_params_axis(inputs):
  keys = jax.random.split(jax.random.PRNGKey(42), 2)
  stacked = jax.jit(jax.vmap(lambda k: ntm_jax.init(k, CFG)))(keys)
  assert stacked["params"]["initial_read"].shape == (2, 1, 4)
  out = jax.jit(jax.vmap(lambda p: ntm_jax.apply(p, inputs, CFG)[0]))(stacked)
  assert out.shape == (2, B, T, 2)
  for i in range(2):
    single = _init(keys[i], CFG)
    jax.tree_util.tree_map(
        lambda s, v: np.testing.assert_allclose(s, v, atol=1e-6), single,
        jax.tree_util.tree_map(lambda v: v[i], stacked))
    np.testing.assert_allclose(out[i], _jitted(CFG)(single, inputs)[0], atol=1e-5)
  assert not np.allclose(out[0], out[1])  # the seeds really differ


def test_apply_is_differentiable(params, inputs):
  def loss(p):
    return jnp.mean(ntm_jax.apply(p, inputs, CFG)[0] ** 2)

  grads = jax.jit(jax.grad(loss))(params)
  assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(params)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert bool(jnp.all(jnp.isfinite(g))), path
    assert bool(jnp.any(g != 0.0)), f"no gradient reaches {jax.tree_util.keystr(path)}"


def test_apply_runs_with_a_larger_memory_and_the_same_params():
  out, trace = _traced_run(CFG, memory_size=16)
  assert out.shape == (B, T, 2) and _finite(out)
  assert trace["read_weights"].shape == (B, T, 1, 16)
  assert trace["write_weights"].shape == (B, T, 1, 16)
  assert trace["memory"].shape == (B, T, 16, 4)
  _assert_distributions(trace["read_weights"])
  _assert_distributions(trace["write_weights"])


def test_apply_is_causal(params, inputs, logits):
  t = 2
  changed = inputs.at[:, t:].set(jax.random.normal(jax.random.PRNGKey(7), (B, T - t, 3)))
  out = _jitted(CFG)(params, changed)[0]
  np.testing.assert_array_equal(out[:, :t], logits[:, :t])
  assert not np.allclose(out[:, t], logits[:, t])  # the change is visible at t


def test_sequences_in_a_batch_are_independent(params, inputs, logits):
  changed = inputs.at[1].set(-inputs[1])
  out = _jitted(CFG)(params, changed)[0]
  np.testing.assert_allclose(out[0], logits[0], atol=1e-6)
  assert not np.allclose(out[1], logits[1])


# --------------------------------------------------------------------------
# Bad input.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(T, 3), (B, T, 4), (B, T, 3, 1), (B, T, 2)])
def test_apply_rejects_bad_input_shapes(params, shape):
  with pytest.raises(ValueError, match="inputs must be"):
    ntm_jax.apply(params, jnp.zeros(shape), CFG)


@pytest.mark.parametrize("memory_size", [0, 2])
def test_apply_rejects_too_small_memory(params, inputs, memory_size):
  with pytest.raises(ValueError, match="memory_size"):
    ntm_jax.apply(params, inputs, CFG, memory_size=memory_size)


# --------------------------------------------------------------------------
# Parameter counts.
# --------------------------------------------------------------------------


def test_param_count_small_ntm_by_hand(params):
  i, o, h, m, r = 3, 2, 16, 4, 1
  head_out = 2 * (m + 3 + 3) + 2 * m                   # 28
  expected = ((i + r * m) * h + h                       # controller dense: 128
              + h * head_out + head_out                 # heads dense: 476
              + (h + r * m) * o + o                     # output dense: 42
              + r * m)                                  # initial read: 4
  assert expected == 650
  assert ntm_jax.param_count(params) == expected


def test_param_count_variants_by_hand():
  # Learned memory adds N * M = 32.
  assert ntm_jax.param_count(_params(CFG_LEARNED)) == 650 + 32
  # LSTM controller on 3 + 4 inputs: 4 * (7 + 16) * 16 + 4 * 16 = 1536, heads and
  # output and initial read as for the ff controller (476 + 42 + 4).
  assert ntm_jax.param_count(_params(CFG_LSTM)) == 1536 + 476 + 42 + 4
  # 2 read + 2 write heads: controller (3 + 8) * 16 + 16 = 192; head_out =
  # 4 * 10 + 2 * 2 * 4 = 56 -> 16 * 56 + 56 = 952; output (16 + 8) * 2 + 2 = 50; 8.
  assert ntm_jax.param_count(_params(CFG_MULTI)) == 192 + 952 + 50 + 8


# --------------------------------------------------------------------------
# The LSTM baseline.
# --------------------------------------------------------------------------


def _np_lstm_baseline(params, x):
  p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)["params"]
  layers = [p["controller"][f"lstm_{l}"] for l in range(BASELINE.layers)]
  carry = [(np.zeros(BASELINE.size), np.zeros(BASELINE.size)) for _ in layers]
  outs = []
  for xt in np.asarray(x, np.float64):
    inp = xt
    for l, q in enumerate(layers):
      c, h = carry[l]

      size = BASELINE.size
      pre = np.concatenate([inp, h]) @ q["kernel"] + q["bias"]
      gate = {name: pre[k * size:(k + 1) * size] for k, name in enumerate("ifgo")}
      i, f, o = _sigmoid(gate["i"]), _sigmoid(gate["f"]), _sigmoid(gate["o"])
      c = f * c + i * np.tanh(gate["g"])
      h = o * np.tanh(c)
      carry[l] = (c, h)
      inp = h
    outs.append(inp @ p["output"]["kernel"] + p["output"]["bias"])
  return np.stack(outs)


def test_lstm_baseline_param_layout_and_count():
  p = _params(BASELINE)
  shapes = jax.tree_util.tree_map(lambda a: a.shape, p)["params"]
  hsz = BASELINE.size
  for l, fan_in in enumerate([3, hsz]):
    layer = shapes["controller"][f"lstm_{l}"]
    assert layer == {"kernel": (fan_in + hsz, 4 * hsz), "bias": (4 * hsz,)}
  assert shapes["output"] == {"kernel": (hsz, 2), "bias": (2,)}
  # Per layer 4 gates * ((in + h) * h + h); output h * O + O.
  per_layer = [4 * ((fan_in + hsz) * hsz + hsz) for fan_in in (3, hsz)]
  assert per_layer == [384, 544]
  assert ntm_jax.param_count(p) == 384 + 544 + 8 * 2 + 2


def test_lstm_baseline_paper_sized_param_count():
  cfg = ntm_jax.LSTMConfig(input_size=9, output_size=8)  # 3 x 256
  p = jax.eval_shape(lambda k: ntm_jax.init(k, cfg), jax.random.PRNGKey(0))
  expected = (4 * ((9 + 256) * 256 + 256) + 2 * 4 * ((256 + 256) * 256 + 256)
              + 256 * 8 + 8)
  assert ntm_jax.param_count(p) == expected


def test_lstm_baseline_apply_matches_numpy_reference(inputs):
  p = _params(BASELINE)
  out, trace = ntm_jax.apply(p, inputs, BASELINE)
  assert out.shape == (B, T, 2) and trace is None
  for b in range(B):
    np.testing.assert_allclose(out[b], _np_lstm_baseline(p, inputs[b]), atol=1e-5)
  # memory_size means nothing to the baseline; jit works the same way.
  out_jit = _jitted(BASELINE, memory_size=64)(p, inputs)[0]
  np.testing.assert_allclose(out_jit, out, atol=1e-5)
  with pytest.raises(ValueError, match="inputs must be"):
    ntm_jax.apply(p, inputs[..., :2], BASELINE)


# --------------------------------------------------------------------------
# apply(length=...) and the output layer after the time loop.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("config", [CFG, CFG_LSTM, CFG_MULTI, BASELINE],
                         ids=["ntm", "ntm_lstm_controller", "ntm_multi_head", "lstm"])
def test_apply_with_a_length_is_the_step_by_step_cell_then_zeros(config):
  params, x = _params(config), _inputs()
  stepped = np.asarray(ntm_jax.models.apply_step_by_step(params, x, config))
  run = jax.jit(lambda p, x, n: ntm_jax.apply(p, x, config, length=n)[0])
  for length in (0, 1, 3, T):
    out = np.asarray(run(params, x, jnp.int32(length)))
    np.testing.assert_allclose(out[:, :length], stepped[:, :length], atol=1e-5)
    assert np.all(out[:, length:] == 0.0)
  np.testing.assert_allclose(_jitted(config)(params, x)[0], stepped, atol=1e-5)


def test_apply_with_a_length_traces_only_the_steps_run(params, inputs):
  run = jax.jit(lambda p, x, n: ntm_jax.apply(p, x, CFG, length=n, return_trace=True,
                                              trace_memory=True))
  _, trace = run(params, inputs, jnp.int32(3))
  _, full = _traced_run(CFG)
  for name in ("read_weights", "write_weights", "memory"):
    np.testing.assert_allclose(trace[name][:, :3], full[name][:, :3], atol=1e-5)
    assert np.all(np.asarray(trace[name][:, 3:]) == 0.0)


def test_pretrained_copy_gives_the_step_by_step_cells_outputs():
  model_config, params = ntm_jax.pretrained.load("copy")
  inputs, _, _ = ntm_jax.tasks.make_task("copy").sample(jax.random.PRNGKey(0), 2, 5, 5)
  fused = jax.jit(lambda p, x: ntm_jax.apply(p, x, model_config)[0])(params, inputs)
  stepped = jax.jit(lambda p, x: ntm_jax.models.apply_step_by_step(p, x, model_config))(
      params, inputs)
  np.testing.assert_allclose(fused, stepped, atol=1e-4)
  # A trained copier is confident: the two agree on every output bit.
  assert np.array_equal(np.asarray(fused) > 0, np.asarray(stepped) > 0)
