// The precision guard (BuilderConfig::precisionGuard): a build that let layers take a
// reduced precision by their own times is checked whole against the FP32 engine it could
// have been, and the faster of the two is kept.
//
// Why: the builder prices each layer alone. An INT8 layer's time includes quantizing its
// f32 input and writing its f32 output, but not what its choice costs around it: the
// Reorders where it cuts an f32 region out of the blocked layout, and where INT8 is only
// ~1.2-1.4x its f32 rival per layer (AVX2 without VNNI, against f32 Winograd) those and the
// host's noise can make the mixed engine the slower one. Timing two whole engines,
// alternately and on the same inputs, is what a user would do to check it.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>

#include "anvil/anvil.hpp"
#include "ir/tensor.h"

namespace anvil::codegen {

// Whether the guard applies to a build of `config`: CPU, reduced precisions allowed by
// --fp16 / --bf16 / --int8, no --precision=auto, the guard not turned off.
bool precisionGuardApplies(const BuilderConfig& config);

// Median milliseconds of a run of engine `a` and of engine `b`, each in a context of its own, run in
// alternating rounds at `threads` intra-op threads on the same `inputs` (by input name, at
// each input's shape). Rounds go on until both have `minRuns` runs and about `budgetMs` has
// passed (at most ~2x that), so load from other processes falls on both alike.
std::pair<double, double> timeEnginesAlternating(const Engine& a, const Engine& b, int threads,
                                                 const std::map<std::string, ir::Tensor>& inputs, int minRuns = 15,
                                                 double budgetMs = 1500);

// What the guard compares with: (reduced engine bytes, FP32 engine bytes) -> their medians (ms).
using EngineTimer = std::function<std::pair<double, double>(const std::string&, const std::string&)>;

// The guard on a finished build: where some layer of `*engine` took a reduced precision by
// cost, builds the FP32 engine of `config`, times both with `timer` (null: the alternating
// rounds above on the first --calibData batch, else on random inputs at the opt shapes)
// and keeps the faster in `*engine`, saying so in `*report` (guard fields, pass log, and a
// warning where the FP32 engine won; its report then describes the FP32 build).
void guardPrecision(const std::string& onnxPath, const BuilderConfig& config, std::string* engine,
                    BuildReport* report, const EngineTimer& timer = nullptr);

}  // namespace anvil::codegen
