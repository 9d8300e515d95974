"""The memory part of an NTM step (no parameters): addressing, write, read;
and its backward pass, written by hand.

`step` is the forward the NTM cell uses (`ntm.memory_step`). It also returns
the intermediate weightings of both addressing passes (Figure 2's stages),
so that `step_vjp` need not recompute them: `ntm_sequence` stores them in
its forward time loop and runs `step_vjp` in its backward one. Autodiff of
the step instead recomputes the whole forward and then transposes it op by
op. `step_vjp` writes the chain rule out once per stage, in reverse:
sharpening (eq. 9), shift (eq. 8), interpolation (eq. 7), content
addressing (eqs. 5-6), the constraints on the head outputs (section 3.3),
write (eqs. 3-4) and read (eq. 2).

Functions work on ONE unbatched sequence: memory `columns: [M, N]`,
weightings of H heads `[H, N]`; `step_vjp_batch` is vmapped over a batch.
tests/test_memory_step.py checks every cotangent against autodiff of `step`
and finite differences, saturated heads included.
"""
import functools

import jax
import jax.numpy as jnp

from ntm_jax.config import NTMConfig
import ntm_jax.models.addressing as addressing
import ntm_jax.models.heads as heads
import ntm_jax.models.memory as memory_ops


def _weightings(columns, w_prev, head: heads.Addressing):
  """Figure 2 for H heads, keeping each stage: columns [M, N], w_prev [H, N]."""
  cos = jax.vmap(addressing.cosine_similarity_columns, (None, 0))(columns, head.key)
  w_content = jax.nn.softmax(head.key_strength[:, None] * cos, axis=-1)
  w_gated = addressing.interpolate(w_content, w_prev, head.gate[:, None])
  w_shifted = jax.vmap(addressing.shift)(w_gated, head.shift_weights)
  w = jax.vmap(addressing.sharpen)(w_shifted, head.sharpening)
  return dict(cos=cos, w_content=w_content, w_gated=w_gated, w_shifted=w_shifted, w=w)


def _address_vjp(columns, w_prev, head: heads.Addressing, stages, ct_w, config):
  """Cotangents of one addressing pass of H heads.

  Args:
    columns: [M, N] the memory addressed.
    w_prev: [H, N]; head: the constrained head outputs; stages: `_weightings`.
    ct_w: [H, N] cotangent of the new weightings.

  Returns:
    (raw cotangents [H, addressing_size] before the head constraints,
     ct_columns [M, N], ct_w_prev [H, N]).
  """
  width = head.shift_weights.shape[-1]
  k = width // 2
  w, w_shifted, w_gated = stages["w"], stages["w_shifted"], stages["w_gated"]
  w_content, cos = stages["w_content"], stages["cos"]
  gamma, beta = head.sharpening[:, None], head.key_strength[:, None]
  gate = head.gate[:, None]
  # Eq. 9 as softmax(gamma * log(w_shifted + eps)).
  ct_logits = w * (ct_w - jnp.sum(w * ct_w, -1, keepdims=True))
  log_shifted = jnp.log(w_shifted + addressing.SHARPEN_EPS)
  ct_gamma = jnp.sum(ct_logits * log_shifted, -1)
  ct_shifted = ct_logits * gamma / (w_shifted + addressing.SHARPEN_EPS)
  # Eq. 8: out = sum_d s[d] roll(w_gated, d - k).
  ct_shift = jnp.stack([jnp.sum(ct_shifted * jnp.roll(w_gated, d - k, -1), -1)
                        for d in range(width)], -1)  # [H, 2k+1]
  ct_gated = sum(head.shift_weights[:, d:d + 1] * jnp.roll(ct_shifted, k - d, -1)
                 for d in range(width))
  # Eq. 7.
  ct_gate = jnp.sum(ct_gated * (w_content - w_prev), -1)
  ct_content = gate * ct_gated
  ct_w_prev = (1.0 - gate) * ct_gated
  # Eqs. 5-6: softmax over rows of beta * cos.
  ct_scores = w_content * (ct_content - jnp.sum(w_content * ct_content, -1, keepdims=True))
  ct_beta = jnp.sum(ct_scores * cos, -1)
  ct_cos = beta * ct_scores  # [H, N]
  location_norms = jnp.sqrt(jnp.sum(columns * columns, 0) + addressing.NORM_EPS)  # [N]
  key_norms = jnp.sqrt(jnp.sum(head.key * head.key, -1) + addressing.NORM_EPS)  # [H]
  ct_dots = ct_cos / (location_norms[None, :] * key_norms[:, None])
  ct_cos_cos = ct_cos * cos
  ct_key = (ct_dots @ columns.T
            - (jnp.sum(ct_cos_cos, -1) / (key_norms * key_norms))[:, None] * head.key)
  ct_columns = (head.key.T @ ct_dots
                - columns * (jnp.sum(ct_cos_cos, 0) / (location_norms * location_norms))[None, :])
  # The constraints of section 3.3, from their outputs.
  ct_shift_logits = head.shift_weights * (
      ct_shift - jnp.sum(head.shift_weights * ct_shift, -1, keepdims=True))
  raw = jnp.concatenate([
      ct_key * heads.activation_grad(head.key, config.key_activation),
      (ct_beta * heads.non_negative_grad(head.key_strength,
                                         config.strength_activation))[:, None],
      (ct_gate * head.gate * (1.0 - head.gate))[:, None],
      ct_shift_logits,
      (ct_gamma * heads.non_negative_grad(head.sharpening - 1.0,
                                          config.strength_activation))[:, None]], -1)
  return raw, ct_columns, ct_w_prev


def _write_vjp(columns, weights, erase, add, ct_new):
  """Cotangents of `memory.write_heads_columns`: (ct_columns, ct_weights [W, N],
  ct_erase [W, M], ct_add [W, M])."""
  keeps = [1.0 - jnp.outer(erase[h], weights[h]) for h in range(weights.shape[0])]
  ct_weights, ct_erase = [], []
  for h in range(len(keeps)):
    # The cotangent of head h's keep factor: the others' factors stay in it.
    ct_keep = functools.reduce(jnp.multiply, keeps[:h] + keeps[h + 1:], ct_new * columns)
    ct_weights.append(-(erase[h] @ ct_keep))
    ct_erase.append(-(ct_keep @ weights[h]))
  keep = functools.reduce(jnp.multiply, keeps)
  return (ct_new * keep, jnp.stack(ct_weights) + add @ ct_new, jnp.stack(ct_erase),
          weights @ ct_new.T)


def step(config: NTMConfig, carry, raw):
  """The memory part of one step for one sequence.

  Args:
    config: the NTM config.
    carry: (columns [M, N], read weights [R, N], write weights [W, N],
      read vectors [R, M]) before the step.
    raw: [head_output_size] the head layer's output.

  Returns:
    (the same four after the step, stages: the intermediate weightings of
     the write and the read addressing, which `step_vjp` takes).
  """
  columns, read_prev, write_prev, _ = carry
  read, write, vectors = heads.split_head_outputs(raw, config)
  write_stages = _weightings(columns, write_prev, write)
  new_columns = memory_ops.write_heads_columns(
      columns, write_stages["w"], vectors.erase, vectors.add)
  read_stages = _weightings(new_columns, read_prev, read)
  read_vectors = memory_ops.read_heads_columns(new_columns, read_stages["w"])
  new_carry = (new_columns, read_stages["w"], write_stages["w"], read_vectors)
  # Write first, then read, so a value can be read back on the step it is
  # written (the copy task's output phase needs no extra delay step).
  return new_carry, dict(read=read_stages, write=write_stages)


def step_vjp(config: NTMConfig, carry, raw, ct_new, stages=None):
  """The vjp of `step` for one sequence.

  Args:
    config, carry, raw: as for `step`.
    ct_new: cotangents of `step`'s new carry.
    stages: `step`'s second output, or None to recompute it.

  Returns:
    (cotangents of carry (the read vectors' is zero: the memory part does
     not use them), ct_raw [head_output_size]).
  """
  columns, read_prev, write_prev, read_vectors = carry
  ct_columns_new, ct_read_w, ct_write_w, ct_read_vectors = ct_new
  clipped = jnp.clip(raw, -config.head_clip, config.head_clip)
  read, write, vectors = heads.split_head_outputs(raw, config)
  if stages is None:
    stages = step(config, carry, raw)[1]
  read_stages, write_stages = stages["read"], stages["write"]
  write_w = write_stages["w"]
  new_columns = memory_ops.write_heads_columns(columns, write_w, vectors.erase, vectors.add)
  # Eq. 2.
  ct_read_w = ct_read_w + ct_read_vectors @ new_columns
  ct_columns_new = ct_columns_new + ct_read_vectors.T @ read_stages["w"]
  ct_read_raw, ct_columns_read, ct_read_prev = _address_vjp(
      new_columns, read_prev, read, read_stages, ct_read_w, config)
  ct_columns_new = ct_columns_new + ct_columns_read
  # Eqs. 3-4.
  ct_columns, ct_written, ct_erase, ct_add = _write_vjp(
      columns, write_w, vectors.erase, vectors.add, ct_columns_new)
  ct_write_raw, ct_columns_write, ct_write_prev = _address_vjp(
      columns, write_prev, write, write_stages, ct_write_w + ct_written, config)
  ct_raw = jnp.concatenate([
      ct_read_raw.reshape(-1), ct_write_raw.reshape(-1),
      (ct_erase * vectors.erase * (1.0 - vectors.erase)).reshape(-1),
      (ct_add * heads.activation_grad(vectors.add, config.add_activation)).reshape(-1)])
  # jnp.clip passes the cotangent only where the raw value was not clipped.
  ct_raw = jnp.where(clipped == raw, ct_raw, 0.0)
  return ((ct_columns + ct_columns_write, ct_read_prev, ct_write_prev,
           jnp.zeros_like(read_vectors)), ct_raw)


def step_vjp_batch(config: NTMConfig, carry, raw, ct_new, stages):
  """`step_vjp` over a batch: every argument with a leading [B]."""
  return jax.vmap(step_vjp, (None, 0, 0, 0, 0))(config, carry, raw, ct_new, stages)
