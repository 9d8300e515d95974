"""Analytic floating-point operation counts of the models and a training step.

XLA's cost analysis of a compiled training chunk counts every while-loop body
(each `jax.lax.scan`: over time steps, over training steps) ONCE, not once per
trip, so FLOP/s computed from it are a large undercount. This module counts
the work of one time step by hand, from the code in `model.py`,
`controllers.py`, `heads.py`, `addressing.py` and `memory.py` (equation
numbers are Graves, Wayne & Danihelka 2014's), and scales it to a training
step.

Conventions (every count below follows them):
  * A multiply-add is 2 FLOPs: a dense layer in -> out costs 2*in*out, plus
    out for the bias; a product [a, b] @ [b, c] costs 2*a*b*c.
  * Every other elementwise op (add, multiply, divide, max, clamp, sqrt) is
    1 FLOP per element, and so is each transcendental function: exp, log,
    tanh and sigmoid are 1 FLOP each, softplus = log(1 + exp(x)) is 3. XLA
    reports transcendentals under a separate key, "transcendentals", not in
    "flops"; `xla_forward_flops_per_step` adds the two.
  * A reduction over n elements is n FLOPs; a softmax over n elements is 5n
    (max, subtract, exp, sum, divide).
  * Data movement (concatenate, split, reshape, roll, stack, one-hot) is free.
  * Forward counts are for ONE unbatched sequence; `apply` vmaps the cell over
    the batch, which multiplies every term by B and changes none.
"""
import dataclasses
from typing import Optional, Union

import jax
import jax.numpy as jnp

from ntm_jax import heads as heads_lib
from ntm_jax import model as model_lib
from ntm_jax.config import LSTMConfig, NTMConfig

ModelConfig = Union[NTMConfig, LSTMConfig]

SOFTMAX_FLOPS = 5   # per element: max, subtract, exp, sum, divide
SOFTPLUS_FLOPS = 3  # per element: exp, add, log
# Per parameter and training step: clip_by_global_norm 4 (square, sum,
# divide, multiply), scale_by_adam 13 (first moment 3, second moment 4, two
# bias corrections 2, sqrt(nu + eps_root) + eps and the divide 4), the
# update p - lr * d 2, and 1 for the clip's select. XLA's cost analysis of
# train.make_optimizer("adam").update plus the update measured 20.0 per
# parameter for both the copy NTM and the LSTM baseline.
OPTIMIZER_FLOPS_PER_PARAM = 20
# Per output element and training step, forward and backward of
# train.sequence_metrics (two log-sigmoids, the cross-entropy products, the
# mask, the sums, the bit-error compare): XLA's cost analysis measured 52.
LOSS_FLOPS_PER_OUTPUT = 50


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


def _controller_flops(config: ModelConfig, fan_in: int) -> tuple:
  """(dense FLOPs, elementwise FLOPs) of the controller on one step."""
  if isinstance(config, LSTMConfig):
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


def _addressing_flops(config: NTMConfig, num_heads: int, rows: int) -> int:
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


def _head_activation_flops(config: NTMConfig) -> int:
  """Constraining the P raw head outputs (heads.split_head_outputs).

  clip to +-head_clip: P (one clamp each); per head of H = R + W: key tanh M
  (0 if linear), beta softplus 3, gate sigmoid 1, shift softmax 5S, gamma
  1 + softplus 4; per write head: erase sigmoid M, add tanh M (0 if linear).
  """
  m, s = config.memory_width, config.shift_range
  num_heads = config.read_heads + config.write_heads
  key = m if config.key_activation == "tanh" else 0
  add = m if config.add_activation == "tanh" else 0
  per_head = key + SOFTPLUS_FLOPS + 1 + SOFTMAX_FLOPS * s + 1 + SOFTPLUS_FLOPS
  return (heads_lib.head_output_size(config) + num_heads * per_head
          + config.write_heads * (m + add))


def forward_flops_breakdown(config: ModelConfig,
                            memory_size: Optional[int] = None) -> dict:
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
    config: NTMConfig or LSTMConfig.
    memory_size: N for this count (default: config.memory_rows). Ignored by
      the LSTM baseline.

  Returns:
    {term: FLOPs} as ints; the terms sum to `forward_flops_per_step`.
  """
  if isinstance(config, LSTMConfig):
    dense, elementwise = _controller_flops(config, config.input_size)
    return {"controller": dense + elementwise,
            "output": dense_flops(config.size, config.output_size)}
  if not isinstance(config, NTMConfig):
    raise TypeError(f"config must be NTMConfig or LSTMConfig, got {type(config).__name__}")
  n = config.memory_rows if memory_size is None else memory_size
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


def forward_flops_per_step(config: ModelConfig,
                           memory_size: Optional[int] = None) -> int:
  """FLOPs of one time step of one sequence's forward pass (see the module
  docstring for the conventions, `forward_flops_breakdown` for the terms)."""
  return sum(forward_flops_breakdown(config, memory_size).values())


def dense_flops_per_step(config: ModelConfig) -> int:
  """The dense layers' share of `forward_flops_per_step`: controller matmuls
  and biases (an LSTM's 4 gates: input dense without bias, recurrent dense
  with bias), the head layer (NTM) and the output layer."""
  if isinstance(config, LSTMConfig):
    controller, _ = _controller_flops(config, config.input_size)
    return controller + dense_flops(config.size, config.output_size)
  m, r, c = config.memory_width, config.read_heads, config.controller_size
  controller, _ = _controller_flops(config, config.input_size + r * m)
  return (controller + dense_flops(c, heads_lib.head_output_size(config))
          + dense_flops(c + r * m, config.output_size))


def model_param_count(config: ModelConfig) -> int:
  """Scalar parameters of `config`'s model, from shapes only (no init run)."""
  shapes = jax.eval_shape(lambda: model_lib.init(jax.random.PRNGKey(0), config))
  return model_lib.param_count(shapes)


def train_step_flops(config: ModelConfig, batch_size: int,
                     steps_per_sequence: int, remat: Optional[bool] = None,
                     param_count: Optional[int] = None) -> int:
  """FLOPs of one `train.train_step` of one seed (Adam).

  Convention: the backward pass costs 2 forward passes (for a matmul, one
  product for the input's gradient and one of the same size for the
  weights'), and with remat (`jax.checkpoint` per time step) the forward is
  recomputed once more inside the backward pass, so
    model = (4 if remat else 3) * forward_flops_per_step * B * T
  plus, per time step, P adds to accumulate the parameters' gradient over the
  scan (P = parameter count), the loss forward and backward
  (LOSS_FLOPS_PER_OUTPUT * B * T * O) and the optimizer
  (OPTIMIZER_FLOPS_PER_PARAM * P). Against XLA's count of one time step of
  value_and_grad at B = 4 (xla_gradient_flops_per_time_step, unfused) the
  model terms measured 1.05x for the copy NTM (as its forward: 1.04x), 1.00x
  for an NTM with a 512 controller and 8 + 8 heads and for the 3 x 256 LSTM,
  with remat or without. At B = 1 the weights' gradients are rank-1
  products, which XLA counts as multiplies (1 FLOP, not 2), so there XLA's
  count of an LSTM step is about 10% below this convention's. The LSTM
  baseline's layer-at-a-time path (`ntm_jax.lstm_sequence`) does the same
  matmuls but sums the weights' gradients over time inside one product, so
  for it the P adds per time step overcount by about P / (6 P B) = 4% at B = 4.
  Not counted: sampling the task's data, the finite checks and the selects
  that freeze diverged seeds, the evaluation in train.train_chunk.

  Args:
    config: NTMConfig or LSTMConfig.
    batch_size: B, sequences per step.
    steps_per_sequence: T, time steps the model runs (the padded length: the
      model runs every padded step, masked or not).
    remat: recompute each step in the backward pass (default: config.remat).
    param_count: P (default: computed from the config's parameter shapes).

  Returns:
    FLOPs as an int.
  """
  remat = config.remat if remat is None else remat
  if param_count is None:
    param_count = model_param_count(config)
  passes = 4 if remat else 3
  sequence_steps = batch_size * steps_per_sequence
  model = passes * forward_flops_per_step(config) * sequence_steps
  accumulate = param_count * steps_per_sequence
  loss = LOSS_FLOPS_PER_OUTPUT * config.output_size * sequence_steps
  return model + accumulate + loss + OPTIMIZER_FLOPS_PER_PARAM * param_count


# Turns off XLA's fusion pass: a fused producer is counted once per fusion
# that duplicates it, at its full shape even where the fusion only slices it.
_NO_FUSION = {"xla_disable_hlo_passes": "fusion"}


def xla_cost(fn, *args, fused: bool = True) -> dict:
  """XLA's cost analysis of `jax.jit(fn)` compiled for `args` (arrays or
  jax.ShapeDtypeStruct): a dict with "flops", "transcendentals", ...

  fused=False compiles without the fusion pass (see xla_forward_flops_per_step).
  JAX 0.10.2 returns one dict; older versions a list with one dict per
  computation, of which the first is the program.
  """
  lowered = jax.jit(fn).lower(*args)
  compiled = lowered.compile() if fused else lowered.compile(compiler_options=_NO_FUSION)
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return dict(cost or {})


def _total(cost: dict) -> float:
  # XLA keeps transcendentals apart from "flops"; this module counts them.
  return float(cost.get("flops", 0.0)) + float(cost.get("transcendentals", 0.0))


def _cell_and_shapes(config: ModelConfig, memory_size: Optional[int]):
  """(cell, abstract params, abstract initial state) of `config`'s model."""
  if isinstance(config, NTMConfig):
    cell = model_lib.NTMCell(config)
    memory_size = config.memory_rows if memory_size is None else memory_size
  elif isinstance(config, LSTMConfig):
    cell, memory_size = model_lib.LSTMCell(config), 1
  else:
    raise TypeError(f"config must be NTMConfig or LSTMConfig, got {type(config).__name__}")
  params = jax.eval_shape(lambda: model_lib.init(jax.random.PRNGKey(0), config))
  state = jax.eval_shape(
      lambda p: cell.apply(p, memory_size, method=cell.initial_state), params)
  return cell, params, state


def xla_forward_flops_per_step(config: ModelConfig, memory_size: Optional[int] = None,
                               fused: bool = True) -> float:
  """XLA's count of ONE forward time step of one sequence: "flops" +
  "transcendentals".

  The cell is applied once, straight-line, to abstract params, state and
  input, so nothing is constant-folded and there is no loop to count once.
  One step is exactly one scan body of `model.apply`: two chained steps would
  let XLA share the memory's row norms between step 1's read heads and step
  2's write heads, which a scan body cannot. `jax_disable_most_optimizations`
  does not change the count (it lowers the LLVM backend's effort; the cost
  analysis runs on the HLO after the HLO passes, which still run).

  fused=True counts the program as the benchmark compiles it. XLA's fusion
  duplicates cheap producers into each consumer fusion and the cost analysis
  counts each copy at its full shape (e.g. the interpolation, eq. 7, once per
  roll of eq. 8, and the heads' clip once per head parameter), which adds
  5-8% to an NTM step. fused=False compiles without the fusion pass: the
  count of the arithmetic as written, the one to check this module against.
  XLA also counts a sigmoid as 3 FLOPs + 1 transcendental, a softplus as
  6 + 2, and a product with a contraction of size 1 (one write head's
  weights.T @ add) as a multiply, 1 FLOP per element, not 2.
  """
  cell, params, state = _cell_and_shapes(config, memory_size)
  x = jax.ShapeDtypeStruct((config.input_size,), jnp.float32)

  def step(params, state, x):
    state, (logits, _) = cell.apply(params, state, x)
    return state, logits

  return _total(xla_cost(step, params, state, x, fused=fused))


def xla_gradient_flops_per_time_step(config: ModelConfig, batch_size: int,
                                     remat: Optional[bool] = None,
                                     fused: bool = True) -> float:
  """XLA's count of value_and_grad of the model's cell scanned over [B, 2, I]
  inputs (`model.apply_step_by_step`: for the NTM what `model.apply` runs; the
  LSTM baseline's `apply` takes the layer-at-a-time path, whose input
  projections and weight gradients sit outside the loops, so XLA would count
  them for both steps).

  This leans on the very undercount this module exists for: XLA counts the
  forward scan's body and the backward scan's body once each, so with T = 2
  (T = 1 would be unrolled, and its zero initial carry simplified away) the
  count is one time step's forward and backward (with remat: and the
  recomputed forward) for B sequences, the per-step gradient accumulation,
  plus the little outside the loops (the initial state, the sum standing in
  for the loss). Compare with train_step_flops(config, B, 1) minus the
  optimizer's OPTIMIZER_FLOPS_PER_PARAM * P. Should a later XLA unroll
  two-trip loops, this count doubles (tests/test_flops.py would notice).
  """
  remat = config.remat if remat is None else remat
  config = dataclasses.replace(config, remat=remat)
  params = jax.eval_shape(lambda: model_lib.init(jax.random.PRNGKey(0), config))
  inputs = jax.ShapeDtypeStruct((batch_size, 2, config.input_size), jnp.float32)

  def loss(params, inputs):
    return model_lib.apply_step_by_step(params, inputs, config).sum()

  return _total(xla_cost(jax.value_and_grad(loss), params, inputs, fused=fused))
