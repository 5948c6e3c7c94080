// The three tables agree: every op in the op table has a reference kernel and every
// kernel an op, and every importer's op range is well formed.
#include <gtest/gtest.h>

#include <set>

#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "parser/onnx_parser.h"

TEST(Registry, EveryOpHasAReferenceKernelAndViceVersa) {
  std::set<std::pair<std::string, std::string>> schemas, kernels;
  for (const auto* s : anvil::ir::OpRegistry::instance().all()) {
    schemas.insert({s->domain, s->name});
    EXPECT_TRUE(s->infer) << s->name << " has no shape inference";
  }
  for (const auto& k : anvil::cpu::KernelRegistry::instance().ops()) kernels.insert(k);
  for (const auto& s : schemas)
    EXPECT_TRUE(kernels.count(s)) << "op " << s.first << "." << s.second << " has no reference kernel";
  for (const auto& k : kernels)
    EXPECT_TRUE(schemas.count(k)) << "kernel " << k.first << "." << k.second << " has no op schema";
}

TEST(Registry, ImporterRangesAreWellFormed) {
  for (const auto& imp : anvil::parser::importerTable()) {
    EXPECT_LE(imp.sinceVersion, imp.untilVersion) << imp.op;
    EXPECT_GE(imp.sinceVersion, anvil::parser::kMinOpset) << imp.op;
    EXPECT_LE(imp.untilVersion, anvil::parser::kMaxOpset) << imp.op;
  }
}
