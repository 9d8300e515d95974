"""The LSTM baseline over whole sequences, one layer at a time.

`model.apply` runs the baseline through here rather than step by step: the
same parameters and the same numbers as `controllers.LSTMLayer` applied at
every step (tests/test_lstm_sequence.py checks both, and the gradients), but
arranged so most of the arithmetic is in a few large matrix products:

- A layer's input projection for every time step is one product,
  `inputs [T * B, I] @ input_kernel [I, 4H]`, outside the recurrence; only
  `h [B, H] @ recurrent_kernel [H, 4H]` stays inside the time loop. This
  works because no layer feeds back into an earlier one.
- The backward pass is written by hand (`_recurrence`'s custom VJP). Autodiff
  of `lax.scan` would add every step's outer product into the recurrent
  kernel's gradient inside the loop, reading and writing the whole [H, 4H]
  gradient once per time step; here the loop only emits the gate gradients
  and the kernel's gradient is one product over all steps afterwards.

Per seed the baseline's weights are about 5 MB (3 x 256 units), far more
than a core's cache, so a time loop that touches them fewer times is the
main saving; for the same reason a CPU trains the baseline's seeds one at a
time (`models.LSTM.cpu_seeds_per_group`, which `training.layout` follows).
RESULTS.md ("Throughput", the LSTM baseline) has the measurements.
"""
import jax
import jax.numpy as jnp


def _gates(pre_activations: jax.Array):
  """[..., 4H] -> input, forget, cell candidate, output gate values."""
  i, f, g, o = jnp.split(pre_activations, 4, axis=-1)
  return jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)


def _forward(recurrent_kernel: jax.Array, pre: jax.Array):
  """Runs the recurrence, keeping what the backward pass needs.

  recurrent_kernel: [H, 4H]; pre: [T, B, 4H], the input projection plus bias.
  Returns hidden [T, B, H] and residuals for `_backward`.
  """
  size = recurrent_kernel.shape[0]
  zeros = jnp.zeros(pre.shape[1:-1] + (size,), pre.dtype)

  def step(carry, pre_t):
    c_prev, h_prev = carry
    i, f, g, o = _gates(pre_t + h_prev @ recurrent_kernel)
    c = f * c_prev + i * g
    h = o * jnp.tanh(c)
    return (c, h), (h, c, h_prev, c_prev, jnp.concatenate([i, f, g, o], axis=-1))

  _, (hidden, cells, hidden_prev, cells_prev, gates) = jax.lax.scan(step, (zeros, zeros), pre)
  return hidden, (recurrent_kernel, cells, hidden_prev, cells_prev, gates)


@jax.custom_vjp
def _recurrence(recurrent_kernel: jax.Array, pre: jax.Array) -> jax.Array:
  """recurrent_kernel [H, 4H], pre [T, B, 4H] -> hidden [T, B, H], from zero state."""
  return _forward(recurrent_kernel, pre)[0]


def _backward(residuals, hidden_grad: jax.Array):
  """hidden_grad [T, B, H] -> (recurrent kernel grad [H, 4H], pre grad [T, B, 4H])."""
  recurrent_kernel, cells, hidden_prev, cells_prev, gates = residuals
  zeros = jnp.zeros_like(hidden_grad[0])

  def step(carry, xs):
    dh_next, dc_next = carry
    dh_out, c, c_prev, gate_values = xs
    i, f, g, o = jnp.split(gate_values, 4, axis=-1)
    dh = dh_out + dh_next
    tanh_c = jnp.tanh(c)
    dc = dc_next + dh * o * (1.0 - tanh_c * tanh_c)
    # Derivatives of sigmoid and tanh in terms of their values.
    dz = jnp.concatenate([dc * g * i * (1.0 - i),
                          dc * c_prev * f * (1.0 - f),
                          dc * i * (1.0 - g * g),
                          dh * tanh_c * o * (1.0 - o)], axis=-1)
    return (dz @ recurrent_kernel.T, dc * f), dz

  _, pre_grad = jax.lax.scan(step, (zeros, zeros), (hidden_grad, cells, cells_prev, gates),
                             reverse=True)
  kernel_grad = jnp.einsum("tbh,tbk->hk", hidden_prev, pre_grad)
  return kernel_grad, pre_grad


_recurrence.defvjp(_forward, _backward)


def lstm_layer(kernel: jax.Array, bias: jax.Array, inputs: jax.Array) -> jax.Array:
  """One `controllers.LSTMLayer` over a batch of whole sequences, from zero state.

  kernel: [I + H, 4H] (rows for the input, then for the previous hidden
  state, as in `LSTMLayer`); bias: [4H]; inputs: [T, B, I].
  Returns the hidden states [T, B, H].
  """
  input_size = inputs.shape[-1]
  pre = inputs @ kernel[:input_size] + bias[None, None, :]
  return _recurrence(kernel[input_size:], pre)


def apply_lstm(params, inputs: jax.Array, layers: int, remat: bool = False) -> jax.Array:
  """The baseline's logits for a batch.

  params: from `model.init` with an `LSTMConfig` of `layers` layers;
  inputs: [B, T, I]; remat: keep only each layer's inputs for the backward
  pass and recompute the rest. Returns logits [B, T, output_size].
  """
  layer_fn = jax.checkpoint(lstm_layer) if remat else lstm_layer
  weights = params["params"]
  x = jnp.swapaxes(inputs, 0, 1)  # time-major: [T, B, I]
  for layer in range(layers):
    lstm = weights["controller"][f"lstm_{layer}"]
    x = layer_fn(lstm["kernel"], lstm["bias"], x)
  output = weights["output"]
  return jnp.swapaxes(x @ output["kernel"] + output["bias"][None, None, :], 0, 1)
