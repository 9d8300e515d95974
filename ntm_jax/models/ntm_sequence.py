"""The NTM with a feed-forward controller over a batch of sequences, its
backward pass written by hand around the dense layers.

`model.apply` runs training-length calls (a `length`, no trace) of a
feed-forward NTM through here; the numbers are those of scanning
`NTMCell.features` (tests/test_ntm_sequence.py checks values and gradients
against that and against finite differences). Autodiff of the scanned cell
spends much of its backward pass on the dense layers, in three ways this
file avoids:

- Each step adds its outer products into the kernels' gradients, reading
  and writing every kernel-sized gradient once per time step. Here the time
  loop only records each dense layer's input and output cotangent, and each
  kernel's gradient is one matrix product over all steps and sequences
  after the loop.
- The input cotangent `ct_out @ kernel.T` ran as a matrix product with a
  transposed operand, several times slower on XLA's CPU backend than with
  the kernel transposed once, before the loop.
- Nothing is recomputed by autodiff: the dense layers' inputs and
  pre-activations are kept (a few hundred floats per sequence and step),
  and so are the memory part's addressing stages, for its hand-written
  backward (`memory_step.step_vjp`).

Every array here carries the batch: inputs [T, B, I], memories [B, M, N].
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ntm_jax.config import NTMConfig
from ntm_jax.models.controllers import ACTIVATIONS
import ntm_jax.models.memory_step as memory_step
from ntm_jax.models.ntm import NTMState
from ntm_jax.models.scan import at_step, set_step


class _Carry(NamedTuple):
  """The recurrent state of a feed-forward NTM, batched."""
  memory_columns: jax.Array  # [B, M, N]
  read_weights: jax.Array    # [B, R, N]
  write_weights: jax.Array   # [B, W, N]
  read_vectors: jax.Array    # [B, R, M]


def applies(config: NTMConfig) -> bool:
  """Whether `features` runs this NTM (a feed-forward controller)."""
  return getattr(config, "kind", None) == "ntm" and config.controller == "ff"


def features(params, config: NTMConfig, state: NTMState, inputs: jax.Array,
             length) -> jax.Array:
  """Step features of a batch, the same numbers as scanning `NTMCell.features`.

  Args:
    params: the NTM's parameters (`ntm_jax.init`).
    config: an NTM config with a feed-forward controller.
    state: the initial NTMState, batched: memory_columns [B, M, N], ...
    inputs: [T, B, input_size], time major.
    length: int32 scalar (may be traced): steps run; features are zero after.

  Returns:
    [T, B, H + R M] each step's controller output and read vectors.
  """
  p = params["params"]
  layers = tuple((p["controller"][f"Dense_{i}"]["kernel"], p["controller"][f"Dense_{i}"]["bias"])
                 for i in range(config.controller_layers))
  head = (p["heads"]["kernel"], p["heads"]["bias"])
  carry = _Carry(state.memory_columns, state.read_weights, state.write_weights,
                 state.read_vectors)
  return _features(config, (layers, head), carry, inputs, jnp.asarray(length, jnp.int32))


def _memory_step(config: NTMConfig, carry: _Carry, raw: jax.Array):
  """`memory_step.step` on a batch: carry [B, ...], raw [B, P] -> (carry,
  stages)."""
  new_carry, stages = jax.vmap(functools.partial(memory_step.step, config))(carry, raw)
  return _Carry(*new_carry), stages


def _run(config, dense, carry, inputs, length, keep):
  """The forward time loop: features [T, B, F], and with `keep` what the
  backward pass needs: the state before each step, each step's controller
  input, every layer's pre-activation, the head layer's output and the
  memory part's addressing stages."""
  layers, (head_kernel, head_bias) = dense
  activation = ACTIVATIONS[config.controller_activation]
  steps, batch = inputs.shape[:2]
  hidden_size = layers[-1][0].shape[1]
  feature_size = hidden_size + carry.read_vectors.shape[1] * carry.read_vectors.shape[2]
  zeros = lambda shape: jnp.zeros((steps,) + tuple(shape), inputs.dtype)
  feats = zeros((batch, feature_size))
  if keep:
    raw_shape = jax.ShapeDtypeStruct((batch, head_kernel.shape[1]), inputs.dtype)
    stages_shape = jax.eval_shape(functools.partial(_memory_step, config), carry, raw_shape)[1]
    saved = dict(carries=jax.tree_util.tree_map(lambda a: zeros(a.shape), carry),
                 ins=zeros((batch, inputs.shape[2] + feature_size - hidden_size)),
                 pres=tuple(zeros((batch, k.shape[1])) for k, _ in layers),
                 raws=zeros(raw_shape.shape),
                 stages=jax.tree_util.tree_map(lambda a: zeros(a.shape), stages_shape))
  else:
    saved = None

  def body(t, loop):
    carry, feats, saved = loop
    h = jnp.concatenate([inputs[t], carry.read_vectors.reshape(batch, -1)], axis=-1)
    controller_input, pres = h, []
    for kernel, bias in layers:
      pres.append(h @ kernel + bias[None, :])
      h = activation(pres[-1])
    raw = h @ head_kernel + head_bias[None, :]
    new_carry, stages = _memory_step(config, carry, raw)
    feats = set_step(feats, t, jnp.concatenate(
        [h, new_carry.read_vectors.reshape(batch, -1)], -1))
    if keep:
      saved = set_step(saved, t, dict(carries=carry, ins=controller_input, pres=tuple(pres),
                                      raws=raw, stages=stages))
    return new_carry, feats, saved

  _, feats, saved = jax.lax.fori_loop(0, length, body, (carry, feats, saved))
  return feats, saved


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _features(config, dense, carry, inputs, length):
  return _run(config, dense, carry, inputs, length, keep=False)[0]


def _features_fwd(config, dense, carry, inputs, length):
  feats, saved = _run(config, dense, carry, inputs, length, keep=True)
  return feats, (dense, saved, length)


def _features_bwd(config, residuals, ct_feats):
  dense, saved, length = residuals
  layers, (head_kernel, _) = dense
  activation = ACTIVATIONS[config.controller_activation]
  batch, hidden_size = saved["pres"][-1].shape[1:]
  input_size = saved["ins"].shape[2] - (ct_feats.shape[2] - hidden_size)
  # Transposed once here: inside the loop `ct @ kernel.T` is a slow product.
  head_kernel_t = head_kernel.T
  kernels_t = tuple(kernel.T for kernel, _ in layers)

  def body(i, loop):
    ct_carry, ct_pres, ct_raws, ct_inputs = loop
    t = length - 1 - i
    step = at_step(saved, t)
    ct_feat = at_step(ct_feats, t)
    ct_read = ct_feat[:, hidden_size:].reshape(ct_carry.read_vectors.shape)
    ct_carry, ct_raw = memory_step.step_vjp_batch(
        config, step["carries"], step["raws"],
        ct_carry._replace(read_vectors=ct_carry.read_vectors + ct_read), step["stages"])
    ct_carry = _Carry(*ct_carry)
    ct_h = ct_raw @ head_kernel_t + ct_feat[:, :hidden_size]
    ct_pres_t = [None] * len(layers)
    for layer in reversed(range(len(layers))):
      ct_pres_t[layer] = jax.vjp(activation, step["pres"][layer])[1](ct_h)[0]
      ct_h = ct_pres_t[layer] @ kernels_t[layer]
    ct_carry = ct_carry._replace(
        read_vectors=ct_carry.read_vectors + ct_h[:, input_size:].reshape(
            ct_carry.read_vectors.shape))
    return (ct_carry, set_step(ct_pres, t, tuple(ct_pres_t)), set_step(ct_raws, t, ct_raw),
            set_step(ct_inputs, t, ct_h[:, :input_size]))

  carry_shape = jax.tree_util.tree_map(lambda b: b[0], saved["carries"])
  init = (jax.tree_util.tree_map(jnp.zeros_like, carry_shape),
          tuple(jnp.zeros_like(b) for b in saved["pres"]),
          jnp.zeros_like(saved["raws"]),
          jnp.zeros(ct_feats.shape[:2] + (input_size,), ct_feats.dtype))
  ct_carry, ct_pres, ct_raws, ct_inputs = jax.lax.fori_loop(0, length, body, init)

  # The kernels' gradients: one product over every step and sequence. Steps
  # past `length` hold zero cotangents, so they add nothing.
  flat = lambda a: a.reshape(-1, a.shape[-1])
  layer_inputs = [saved["ins"]] + [activation(pre) for pre in saved["pres"]]
  ct_layers = tuple((flat(x).T @ flat(ct), flat(ct).sum(0))
                    for x, ct in zip(layer_inputs[:-1], ct_pres))
  ct_head = (flat(layer_inputs[-1]).T @ flat(ct_raws), flat(ct_raws).sum(0))
  return (ct_layers, ct_head), ct_carry, ct_inputs, None


_features.defvjp(_features_fwd, _features_bwd)
