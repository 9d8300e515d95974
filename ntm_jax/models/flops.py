"""Analytic FLOP counts of one forward time step of each model, term by term.

Conventions (every count below follows them):
  * A multiply-add is 2 FLOPs: a dense layer in -> out costs 2*in*out, plus
    out for the bias; a product [a, b] @ [b, c] costs 2*a*b*c.
  * Every other elementwise op (add, multiply, divide, max, clamp, sqrt) is
    1 FLOP per element, and so is each transcendental function: exp, log,
    tanh and sigmoid are 1 FLOP each, softplus = log(1 + exp(x)) is 3.
  * A reduction over n elements is n FLOPs; a softmax over n elements is 5n
    (max, subtract, exp, sum, divide).
  * Data movement (concatenate, split, reshape, roll, stack, one-hot) is free.
  * Counts are for ONE unbatched sequence; a batch multiplies every term by B.
Equation numbers are Graves, Wayne & Danihelka 2014's. `ntm_jax.analysis.flops`
scales these to a training step and checks them against XLA's own count.
"""

import ntm_jax.models.heads as heads_lib

SOFTMAX_FLOPS = 5   # per element: max, subtract, exp, sum, divide
SOFTPLUS_FLOPS = 3  # per element: exp, add, log
def dense_flops(fan_in: int, fan_out: int, bias: bool = True) -> int:
  """One dense layer on one vector: [fan_in] -> [fan_out]."""
  return 2 * fan_in * fan_out + (fan_out if bias else 0)


def _lstm_layer_flops(fan_in: int, size: int) -> tuple:
  """(dense FLOPs, elementwise FLOPs) of one `controllers.LSTMLayer` step.

  One dense layer with bias on [x, h] to the 4 gates
  (8*size*(fan_in + size) + 4*size); the gates' activations (4*size); then
  c' = f*c + i*g (3*size) and h' = o*tanh(c') (2*size): 9*size elementwise.
  """
  dense = dense_flops(fan_in + size, 4 * size)
  elementwise = 4 * size + 3 * size + 2 * size
  return dense, elementwise


def _controller_flops(config, fan_in: int) -> tuple:
  """(dense FLOPs, elementwise FLOPs) of the controller on one step."""
  if config.kind == "lstm":
    kind, size, layers = "lstm", config.size, config.layers
  else:
    kind, size, layers = config.controller, config.controller_size, config.controller_layers
  dense = elementwise = 0
  for _ in range(layers):
    if kind == "lstm":
      layer_dense, layer_elementwise = _lstm_layer_flops(fan_in, size)
    else:
      # A dense layer and its activation (tanh, relu or sigmoid: 1 each).
      layer_dense, layer_elementwise = dense_flops(fan_in, size), size
    dense += layer_dense
    elementwise += layer_elementwise
    fan_in = size
  return dense, elementwise


def _addressing_flops(config, num_heads: int, rows: int) -> int:
  """One group of `num_heads` heads addressing the same memory [N, M].

  model.py vmaps `addressing.address` over the heads with the memory
  unbatched, so the memory's row norms are computed once per group, not once
  per head. With h = num_heads, N = rows, M = memory_width, S = shift_range:
    eq. 6  cosine similarity: h*2NM (the dots memory @ key)
           + 2NM + 2N (row norms: square, sum over M, + eps, sqrt; once)
           + h*(2M + 2) (key norm) + h*2N (product of the norms, divide)
    eq. 5  h*(N + 5N): beta * similarity, softmax over the N rows
    eq. 7  h*(3N + 1): g * w_c + (1 - g) * w_prev
    eq. 8  h*2SN: the weighted sum of S rolled copies (the rolls are free)
    eq. 9  h*8N: w + eps, log, gamma * ., softmax (sharpening in log space)
  """
  n, m, s, h = rows, config.memory_width, config.shift_range, num_heads
  cosine = h * 2 * n * m + (2 * n * m + 2 * n) + h * (2 * m + 2) + h * 2 * n
  content = h * (1 + SOFTMAX_FLOPS) * n
  interpolation = h * (3 * n + 1)
  shift = h * 2 * s * n
  sharpen = h * (3 + SOFTMAX_FLOPS) * n
  return cosine + content + interpolation + shift + sharpen


def _head_activation_flops(config) -> int:
  """Constraining the P raw head outputs (heads.split_head_outputs).

  clip to +-head_clip: P (one clamp each); per head of H = R + W: key tanh M
  (0 if linear), beta softplus 3 (relu 1), gate sigmoid 1, shift softmax 5S,
  gamma 1 + softplus 4 (1 + relu 2); per write head: erase sigmoid M, add tanh
  or relu M (0 if linear).
  """
  m, s = config.memory_width, config.shift_range
  num_heads = config.read_heads + config.write_heads
  key = 0 if config.key_activation == "linear" else m
  add = 0 if config.add_activation == "linear" else m
  strength = 1 if config.strength_activation == "relu" else SOFTPLUS_FLOPS
  per_head = key + strength + 1 + SOFTMAX_FLOPS * s + 1 + strength
  return (heads_lib.head_output_size(config) + num_heads * per_head
          + config.write_heads * (m + add))


def ntm_forward_flops(config, memory_size: int) -> dict:
  """FLOPs of one forward time step of one sequence, term by term.

  Symbols: I input_size, O output_size, C controller size, R read heads,
  W write heads, N memory rows, M memory width, P = heads.head_output_size.

  NTM (NTMCell.__call__), with the controller reading x ++ the R read
  vectors (fan-in I + RM):
    "controller"  feed-forward: per layer 2*in*C + C (dense) + C (activation);
                  LSTM: per layer 8C(in + C) + 17C (see _lstm_layer_flops)
    "heads"       2CP + P (the head layer) + the constraints of
                  _head_activation_flops
    "addressing"  the W write heads on the old memory and the R read heads
                  on the new, eqs. 5-9, per group as in _addressing_flops
    "write"       eqs. 3-4 (memory.write_heads): erase product 2NM for the
                  first head (outer, 1 - .) + 3NM per further head (outer,
                  1 - ., multiply), memory * keep NM, weights.T @ add 2WNM,
                  the sum NM: (5W + 1)NM
    "read"        eq. 2: read_weights @ memory, 2RNM
    "output"      2(C + RM)O + O (the output layer on hidden ++ reads)
  LSTM baseline (LSTMCell.__call__): "controller" as above with fan-in I,
  "output" 2*size*O + O.

  Args:
    config or LSTMConfig.
    memory_size: N for this count (`models.memory_size_for` gives it).

  Returns:
    {term: FLOPs} as ints; the terms sum to `forward_flops_per_step`.
  """
  n = memory_size
  m, r, w = config.memory_width, config.read_heads, config.write_heads
  c = config.controller_size
  dense, elementwise = _controller_flops(config, config.input_size + r * m)
  return {
      "controller": dense + elementwise,
      "heads": (dense_flops(c, heads_lib.head_output_size(config))
                + _head_activation_flops(config)),
      "addressing": _addressing_flops(config, w, n) + _addressing_flops(config, r, n),
      "write": (5 * w + 1) * n * m,
      "read": 2 * r * n * m,
      "output": dense_flops(c + r * m, config.output_size),
  }




def lstm_forward_flops(config) -> dict:
  """The LSTM baseline's step: "controller" (the stacked LSTM layers, fan-in
  I for the first) and "output" (2*size*O + O)."""
  dense, elementwise = _controller_flops(config, config.input_size)
  return {"controller": dense + elementwise,
          "output": dense_flops(config.size, config.output_size)}


def ntm_dense_flops(config) -> int:
  """The dense layers' share of an NTM step: controller matmuls and biases,
  the head layer and the output layer."""
  m, r, c = config.memory_width, config.read_heads, config.controller_size
  controller, _ = _controller_flops(config, config.input_size + r * m)
  return (controller + dense_flops(c, heads_lib.head_output_size(config))
          + dense_flops(c + r * m, config.output_size))


def lstm_dense_flops(config) -> int:
  """The dense layers' share of an LSTM baseline step."""
  controller, _ = _controller_flops(config, config.input_size)
  return controller + dense_flops(config.size, config.output_size)
