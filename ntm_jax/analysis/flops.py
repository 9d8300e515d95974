"""FLOP counts of a training step, and XLA's own count to check them by.

XLA's cost analysis of a compiled training chunk counts every while-loop body
(each `jax.lax.scan`: over time steps, over training steps) ONCE, not once per
trip, so FLOP/s computed from it are a large undercount. The models' forward
time step is counted by hand in `ntm_jax.models.flops` (its conventions hold
here too; XLA reports transcendentals apart from "flops", and
`xla_forward_flops_per_step` adds the two); this module scales that count to
a training step and measures XLA's count of one time step to compare.
"""
import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp

from ntm_jax import models
from ntm_jax.config import ModelConfig

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




def forward_flops_breakdown(config, memory_size: Optional[int] = None) -> dict:
  """FLOPs of one forward time step of one sequence, term by term (see
  `ntm_jax.models.flops` for the terms and conventions). memory_size: N
  (None: the model's own)."""
  return models.get_model(config).forward_flops(
      config, models.memory_size_for(config, memory_size))


def forward_flops_per_step(config: ModelConfig,
                           memory_size: Optional[int] = None) -> int:
  """FLOPs of one time step of one sequence's forward pass (see the module
  docstring for the conventions, `forward_flops_breakdown` for the terms)."""
  return sum(forward_flops_breakdown(config, memory_size).values())


def dense_flops_per_step(config) -> int:
  """The dense layers' share of `forward_flops_per_step`: controller matmuls
  and biases (an LSTM's 4 gates), the head layer (NTM) and the output layer."""
  return models.get_model(config).dense_flops(config)


def model_param_count(config: ModelConfig) -> int:
  """Scalar parameters of `config`'s model, from shapes only (no init run)."""
  shapes = jax.eval_shape(lambda: models.init(jax.random.PRNGKey(0), config))
  return models.param_count(shapes)


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
  baseline's layer-at-a-time path (`ntm_jax.models.lstm_sequence`) does the same
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
  model = models.get_model(config)
  cell = model.cell_class(config)
  memory_size = models.cell_memory_size(config, memory_size)
  params = jax.eval_shape(lambda: models.init(jax.random.PRNGKey(0), config))
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
  params = jax.eval_shape(lambda: models.init(jax.random.PRNGKey(0), config))
  inputs = jax.ShapeDtypeStruct((batch_size, 2, config.input_size), jnp.float32)

  def loss(params, inputs):
    return models.apply_step_by_step(params, inputs, config).sum()

  return _total(xla_cost(jax.value_and_grad(loss), params, inputs, fused=fused))
