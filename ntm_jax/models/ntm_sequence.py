"""The NTM over a batch of sequences, its backward pass written by hand.

`model.apply` runs training-length calls (a `length`, no trace) of an NTM
through here, with a feed-forward or an LSTM controller; the numbers are
those of scanning `NTMCell.features` (tests/test_ntm_sequence.py checks
values and gradients against that and against finite differences).
Autodiff of the scanned cell spends much of its backward pass on the dense
layers, in three ways this file avoids:

- Each step adds its outer products into the kernels' gradients, reading
  and writing every kernel-sized gradient once per time step. Here the time
  loop only records each dense layer's input and output cotangent, and each
  kernel's gradient is one matrix product over all steps and sequences
  after the loop.
- The input cotangent `ct_out @ kernel.T` ran as a matrix product with a
  transposed operand, several times slower on XLA's CPU backend than with
  the kernel transposed once, before the loop.
- Nothing is recomputed by autodiff: the dense layers' inputs and
  pre-activations (an LSTM layer's: its input, gates and previous cell
  state) are kept, a few hundred floats per sequence and step, and so are
  the memory part's addressing stages, for its hand-written backward
  (`memory_step.step_vjp`).

Every array here carries the batch: inputs [T, B, I], memories [B, M, N].
"""
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ntm_jax.config import NTMConfig
from ntm_jax.models.controllers import ACTIVATIONS, lstm_cell
import ntm_jax.models.memory_step as memory_step
from ntm_jax.models.ntm import NTMState
from ntm_jax.models.scan import at_step, set_step


class _Carry(NamedTuple):
  """The recurrent state of an NTM, batched."""
  memory_columns: jax.Array  # [B, M, N]
  read_weights: jax.Array    # [B, R, N]
  write_weights: jax.Array   # [B, W, N]
  read_vectors: jax.Array    # [B, R, M]
  controller: Any            # () or, per LSTM layer, (c [B, size], h [B, size])

  @property
  def memory(self):
    """The four parts `memory_step` carries."""
    return self[:4]


def applies(config: NTMConfig) -> bool:
  """Whether `features` runs this model: an NTM (either controller)."""
  return getattr(config, "kind", None) == "ntm" and config.controller in ("ff", "lstm")


def features(params, config: NTMConfig, state: NTMState, inputs: jax.Array,
             length) -> jax.Array:
  """Step features of a batch, the same numbers as scanning `NTMCell.features`.

  Args:
    params: the NTM's parameters (`ntm_jax.init`).
    config: an NTM config.
    state: the initial NTMState, batched: memory_columns [B, M, N], ...
    inputs: [T, B, input_size], time major.
    length: int32 scalar (may be traced): steps run; features are zero after.

  Returns:
    [T, B, H + R M] each step's controller output and read vectors.
  """
  p = params["params"]
  name = "Dense" if config.controller == "ff" else "lstm"
  layers = tuple((p["controller"][f"{name}_{i}"]["kernel"], p["controller"][f"{name}_{i}"]["bias"])
                 for i in range(config.controller_layers))
  head = (p["heads"]["kernel"], p["heads"]["bias"])
  return _features(config, (layers, head), _Carry(*state), inputs,
                   jnp.asarray(length, jnp.int32))


def _memory_step(config: NTMConfig, carry, raw: jax.Array):
  """`memory_step.step` on a batch: the memory part of a carry [B, ...], raw
  [B, P] -> (memory part, stages)."""
  return jax.vmap(functools.partial(memory_step.step, config))(carry, raw)


def _controller(config, layers, carry, x):
  """One controller step of a batch: x [B, I] -> (carry, hidden [B, H],
  what its backward pass needs)."""
  if config.controller == "ff":
    activation = ACTIVATIONS[config.controller_activation]
    ins, pres = [], []
    for kernel, bias in layers:
      ins.append(x)
      pres.append(x @ kernel + bias[None, :])
      x = activation(pres[-1])
    return (), x, dict(ins=tuple(ins), pres=tuple(pres))
  new_carry, ins, gates, cells = [], [], [], []
  for (kernel, bias), (c, h) in zip(layers, carry):
    ins.append(jnp.concatenate([x, h], -1))
    gates.append(ins[-1] @ kernel + bias[None, :])
    cells.append(c)
    new_carry.append(lstm_cell(gates[-1], c))
    x = new_carry[-1][1]
  return tuple(new_carry), x, dict(ins=tuple(ins), pres=tuple(gates), cells=tuple(cells))


def _controller_vjp(config, kernels_t, saved, ct_hidden, ct_carry):
  """The controller step's backward: -> (ct of its input x, ct of its
  carry before the step, each layer's pre-activation cotangent)."""
  if config.controller == "ff":
    activation = ACTIVATIONS[config.controller_activation]
    ct_pres = [None] * len(kernels_t)
    for layer in reversed(range(len(kernels_t))):
      ct_pres[layer] = jax.vjp(activation, saved["pres"][layer])[1](ct_hidden)[0]
      ct_hidden = ct_pres[layer] @ kernels_t[layer]
    return ct_hidden, (), tuple(ct_pres)
  ct_gates, ct_before = [None] * len(kernels_t), [None] * len(kernels_t)
  for layer in reversed(range(len(kernels_t))):
    ct_c, ct_h = ct_carry[layer]
    i, f, g, o = (jax.nn.sigmoid(a) if k != 2 else jnp.tanh(a)
                  for k, a in enumerate(jnp.split(saved["pres"][layer], 4, -1)))
    c_prev = saved["cells"][layer]
    tanh_c = jnp.tanh(f * c_prev + i * g)
    ct_h = ct_h + ct_hidden
    ct_c = ct_c + ct_h * o * (1.0 - tanh_c * tanh_c)
    ct_gates[layer] = jnp.concatenate([
        ct_c * g * i * (1.0 - i), ct_c * c_prev * f * (1.0 - f),
        ct_c * i * (1.0 - g * g), ct_h * tanh_c * o * (1.0 - o)], -1)
    ct_in = ct_gates[layer] @ kernels_t[layer]
    size = ct_c.shape[-1]
    ct_hidden = ct_in[:, :-size]
    ct_before[layer] = (ct_c * f, ct_in[:, -size:])
  return ct_hidden, tuple(ct_before), tuple(ct_gates)


def _hidden(config, saved):
  """Each step's controller output [T, B, H], from what the loop kept."""
  last = saved["pres"][-1]
  if config.controller == "ff":
    return ACTIVATIONS[config.controller_activation](last)
  return lstm_cell(last, saved["cells"][-1])[1]


def _run(config, dense, carry, inputs, length, keep):
  """The forward time loop: features [T, B, F], and with `keep` what the
  backward pass needs: the memory state before each step, the
  controller's saved quantities, the head layer's output and the memory
  part's addressing stages."""
  layers, (head_kernel, head_bias) = dense
  steps, batch = inputs.shape[:2]
  zeros = lambda shape: jnp.zeros((steps,) + tuple(shape), inputs.dtype)

  def step(carry, x):
    controller_input = jnp.concatenate([x, carry.read_vectors.reshape(batch, -1)], axis=-1)
    controller, hidden, controller_saved = _controller(
        config, layers, carry.controller, controller_input)
    raw = hidden @ head_kernel + head_bias[None, :]
    memory, stages = _memory_step(config, carry.memory, raw)
    new_carry = _Carry(*memory, controller=controller)
    feature = jnp.concatenate([hidden, new_carry.read_vectors.reshape(batch, -1)], -1)
    return new_carry, feature, dict(carries=carry.memory, controller=controller_saved,
                                    raws=raw, stages=stages)

  shapes = jax.eval_shape(step, carry, inputs[0])
  feats = zeros(shapes[1].shape)
  saved = jax.tree_util.tree_map(lambda a: zeros(a.shape), shapes[2]) if keep else None

  def body(t, loop):
    carry, feats, saved = loop
    carry, feature, step_saved = step(carry, inputs[t])
    if keep:
      saved = set_step(saved, t, step_saved)
    return carry, set_step(feats, t, feature), saved

  _, feats, saved = jax.lax.fori_loop(0, length, body, (carry, feats, saved))
  return feats, saved


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _features(config, dense, carry, inputs, length):
  return _run(config, dense, carry, inputs, length, keep=False)[0]


def _features_fwd(config, dense, carry, inputs, length):
  feats, saved = _run(config, dense, carry, inputs, length, keep=True)
  return feats, (dense, carry, saved, length)


def _features_bwd(config, residuals, ct_feats):
  dense, carry, saved, length = residuals
  layers, (head_kernel, _) = dense
  lstm = config.controller == "lstm"
  hidden_size = saved["controller"]["pres"][-1].shape[-1] // (4 if lstm else 1)
  # The first layer's input: the external input, the read vectors and, for
  # an LSTM, its own previous output.
  input_size = (saved["controller"]["ins"][0].shape[2] - (ct_feats.shape[2] - hidden_size)
                - (saved["controller"]["pres"][0].shape[-1] // 4 if lstm else 0))
  # Transposed once here: inside the loop `ct @ kernel.T` is a slow product.
  head_kernel_t = head_kernel.T
  kernels_t = tuple(kernel.T for kernel, _ in layers)

  def body(i, loop):
    ct_carry, ct_pres, ct_raws, ct_inputs = loop
    t = length - 1 - i
    step = at_step(saved, t)
    ct_feat = at_step(ct_feats, t)
    ct_read = ct_feat[:, hidden_size:].reshape(ct_carry.read_vectors.shape)
    ct_memory, ct_raw = memory_step.step_vjp_batch(
        config, step["carries"], step["raws"],
        ct_carry.memory[:3] + (ct_carry.read_vectors + ct_read,), step["stages"])
    ct_hidden = ct_raw @ head_kernel_t + ct_feat[:, :hidden_size]
    ct_x, ct_controller, ct_pres_t = _controller_vjp(
        config, kernels_t, step["controller"], ct_hidden, ct_carry.controller)
    ct_memory = ct_memory[:3] + (ct_memory[3] + ct_x[:, input_size:].reshape(
        ct_carry.read_vectors.shape),)
    return (_Carry(*ct_memory, controller=ct_controller), set_step(ct_pres, t, ct_pres_t),
            set_step(ct_raws, t, ct_raw), set_step(ct_inputs, t, ct_x[:, :input_size]))

  init = (jax.tree_util.tree_map(jnp.zeros_like, carry),
          tuple(jnp.zeros_like(b) for b in saved["controller"]["pres"]),
          jnp.zeros_like(saved["raws"]),
          jnp.zeros(ct_feats.shape[:2] + (input_size,), ct_feats.dtype))
  ct_carry, ct_pres, ct_raws, ct_inputs = jax.lax.fori_loop(0, length, body, init)

  # The kernels' gradients: one product over every step and sequence. Steps
  # past `length` hold zero cotangents, so they add nothing.
  flat = lambda a: a.reshape(-1, a.shape[-1])
  ct_layers = tuple((flat(x).T @ flat(ct), flat(ct).sum(0))
                    for x, ct in zip(saved["controller"]["ins"], ct_pres))
  hidden = _hidden(config, saved["controller"])
  ct_head = (flat(hidden).T @ flat(ct_raws), flat(ct_raws).sum(0))
  return (ct_layers, ct_head), ct_carry, ct_inputs, None


_features.defvjp(_features_fwd, _features_bwd)
