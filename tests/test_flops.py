"""The analytic FLOP counts of ntm_jax.analysis.flops against XLA's cost analysis.

conftest.py turns on jax_disable_most_optimizations. It does not change XLA's
counts (checked: identical with and without for all three configs below):
the flag lowers the LLVM backend's effort, while the cost analysis runs on
the HLO after the HLO passes, fusion included, which still run.
"""
import dataclasses

import pytest

import ntm_jax.analysis.flops as flops
import ntm_jax.models.heads as heads
from ntm_jax.config import LSTMConfig, NTMConfig

# The paper's copy NTM: FF controller 100, 1 + 1 heads, memory 128 x 20, 3 shifts.
COPY = NTMConfig(input_size=9, output_size=8)
LARGE = NTMConfig(input_size=9, output_size=8, controller_size=512,
                  read_heads=8, write_heads=8)
LSTM = LSTMConfig(input_size=9, output_size=8)  # 3 x 256


# Measured analytic / XLA ratios (JAX 0.10.2, CPU), fused and unfused:
#   COPY  0.925, 1.038: elementwise terms are ~37% of the step. Fused, XLA
#         counts producers duplicated into several fusions at full shape;
#         unfused, XLA counts one write head's weights.T @ add (a contraction
#         of size 1) as a multiply, NM FLOPs where the analytic count has 2NM.
#   LARGE 0.947, 1.000: matmuls ~90% of the step.
#   LSTM  0.997, 0.997: matmuls only; the rest is sigmoid's expansion.
# The bounds leave about twice the measured error.
@pytest.mark.parametrize("config, fused_tolerance, unfused_tolerance", [
    (COPY, 0.15, 0.08),
    pytest.param(LARGE, 0.10, 0.02, marks=pytest.mark.slow),  # the largest compile
    (LSTM, 0.02, 0.02),
], ids=["copy_ntm", "large_ntm", "lstm"])
@pytest.mark.slow
def test_forward_step_matches_xla(config, fused_tolerance, unfused_tolerance):
  analytic = flops.forward_flops_per_step(config)
  for fused, tolerance in ((True, fused_tolerance), (False, unfused_tolerance)):
    xla = flops.xla_forward_flops_per_step(config, fused=fused)
    assert abs(analytic / xla - 1.0) < tolerance, (fused, analytic, xla, analytic / xla)


# The 4x-forward convention with remat (forward, recomputation, 2x backward)
# plus P gradient adds per time step, for B = 4 sequences of one time step.
# Measured analytic / XLA (unfused): copy NTM 1.053, LSTM 1.001.
@pytest.mark.parametrize("config, tolerance", [(COPY, 0.10), (LSTM, 0.02)],
                         ids=["copy_ntm", "lstm"])
@pytest.mark.slow
def test_gradient_convention_matches_xla(config, tolerance):
  batch = 4
  params = flops.model_param_count(config)
  analytic = (flops.train_step_flops(config, batch, 1, remat=True, param_count=params)
              - flops.OPTIMIZER_FLOPS_PER_PARAM * params)
  xla = flops.xla_gradient_flops_per_time_step(config, batch, remat=True, fused=False)
  assert abs(analytic / xla - 1.0) < tolerance, (analytic, xla, analytic / xla)


def test_dense_term_by_hand():
  # Tiny NTM: I = 2, O = 3, C = 4, M = 5, one read and one write head, 3 shifts.
  config = NTMConfig(input_size=2, output_size=3, controller_size=4,
                     memory_rows=8, memory_width=5, shift_range=3)
  # Head outputs P = (R + W)(M + 3 + S) + 2WM = 2 * (5 + 3 + 3) + 2 * 5 = 32.
  assert heads.head_output_size(config) == 32
  controller = 2 * (2 + 5) * 4 + 4   # x ++ read vector [7] -> 4: 60
  head_layer = 2 * 4 * 32 + 32       # 4 -> 32: 288
  output = 2 * (4 + 5) * 3 + 3       # hidden ++ read vector [9] -> 3: 57
  assert flops.dense_flops_per_step(config) == controller + head_layer + output == 405

  # Tiny LSTM 2 x 4: per gate an input dense without bias, a recurrent dense with.
  lstm = LSTMConfig(input_size=2, output_size=3, size=4, layers=2)
  layer_0 = 4 * (2 * 2 * 4 + 2 * 4 * 4 + 4)  # 208
  layer_1 = 4 * (2 * 4 * 4 + 2 * 4 * 4 + 4)  # 272
  output = 2 * 4 * 3 + 3                     # 27
  assert flops.dense_flops_per_step(lstm) == layer_0 + layer_1 + output == 507


def test_memory_terms_by_hand():
  # One read and one write head on an 8 x 5 memory.
  config = NTMConfig(input_size=2, output_size=3, controller_size=4,
                     memory_rows=8, memory_width=5, shift_range=3)
  terms = flops.forward_flops_breakdown(config)
  assert terms["read"] == 80    # eq. 2: w @ memory, 8 x 5 multiply-adds
  assert terms["write"] == 240  # eqs. 3-4: erase outer, 1 - ., keep, add outer, sum


def test_relu_strengths_cost_two_flops_less_per_strength():
  # beta and gamma - 1 per head: softplus log(1 + exp(x)) is 3 FLOPs, relu 1;
  # two heads x two strengths x (3 - 1) = 8 FLOPs fewer, all in the heads term.
  config = NTMConfig(input_size=2, output_size=3, controller_size=4,
                     memory_rows=8, memory_width=5, shift_range=3)
  softplus = flops.forward_flops_breakdown(config)
  relu = flops.forward_flops_breakdown(dataclasses.replace(config, strength_activation="relu"))
  assert {k: softplus[k] - relu[k] for k in softplus} == {
      k: (8 if k == "heads" else 0) for k in softplus}


def test_memory_terms_grow_linearly_with_the_rows_and_nothing_else_does():
  config = NTMConfig(input_size=2, output_size=3, controller_size=4,
                     memory_rows=8, memory_width=5, shift_range=3)
  count = lambda n: flops.forward_flops_per_step(config, memory_size=n)  # noqa: E731
  assert count(None) == count(8)
  assert count(24) - count(16) == count(16) - count(8) > 0
  assert count(64) - count(16) == 6 * (count(16) - count(8))
  base = flops.forward_flops_breakdown(config, memory_size=8)
  larger = flops.forward_flops_breakdown(config, memory_size=64)
  for term in ("controller", "heads", "output"):
    assert larger[term] == base[term], term


def test_train_step_is_linear_in_batch_and_steps():
  params = 13280  # the copy NTM's (checked below); passed to skip eval_shape
  count = lambda b, t, **kw: flops.train_step_flops(COPY, b, t, param_count=params, **kw)
  per_batch = count(2, 41) - count(1, 41)
  assert count(5, 41) - count(1, 41) == 4 * per_batch
  per_step = count(4, 20) - count(4, 10)
  assert count(4, 40) - count(4, 20) == 2 * per_step
  # What is left at zero steps is the optimizer's per-parameter cost.
  assert 2 * count(4, 10) - count(4, 20) == flops.OPTIMIZER_FLOPS_PER_PARAM * params
  # remat recomputes the forward once: B * T more forward steps.
  forward = flops.forward_flops_per_step(COPY)
  assert count(4, 41, remat=True) - count(4, 41, remat=False) == 4 * 41 * forward
  assert count(4, 41) == count(4, 41, remat=COPY.remat)


def test_param_count_from_shapes():
  # Copy NTM: controller (9 + 20) * 100 + 100 = 3,000; head layer
  # 100 * 92 + 92 = 9,292; output (100 + 20) * 8 + 8 = 968; initial read 20.
  assert flops.model_param_count(COPY) == 3000 + 9292 + 968 + 20 == 13280
  learned = dataclasses.replace(COPY, memory_init="learned")
  assert flops.model_param_count(learned) == 13280 + 128 * 20
