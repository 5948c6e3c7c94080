// Small ONNX models written with onnx's protobuf for the tests that need a model no export
// script makes (one odd shape, one placement edge), and the engine build the tests share:
// one definition of the value infos, seeded weights, nodes, attributes and the temp file.
#pragma once

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "anvil/anvil.hpp"

namespace anvil::test {

// A tensor's name, element type and shape; a dimension < 0 is the symbolic "batch".
inline onnx::ValueInfoProto valueInfo(const std::string& name, const std::vector<int64_t>& dims,
                                      int elemType = onnx::TensorProto::FLOAT) {
  onnx::ValueInfoProto v;
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(elemType);
  for (int64_t d : dims) {
    if (d < 0)
      t->mutable_shape()->add_dim()->set_dim_param("batch");
    else
      t->mutable_shape()->add_dim()->set_dim_value(d);
  }
  return v;
}

// One graph (IR 8, default domain at `opset`), built node by node and saved to a file.
class OnnxWriter {
 public:
  explicit OnnxWriter(const std::string& graphName = "g", int opset = 17) {
    m_.set_ir_version(8);
    m_.add_opset_import()->set_version(opset);
    g_ = m_.mutable_graph();
    g_->set_name(graphName);
  }
  onnx::ModelProto& model() { return m_; }
  onnx::GraphProto* graph() { return g_; }

  void input(const std::string& name, const std::vector<int64_t>& dims) { *g_->add_input() = valueInfo(name, dims); }
  void output(const std::string& name, const std::vector<int64_t>& dims) {
    *g_->add_output() = valueInfo(name, dims);
  }
  // An f32 initializer drawn uniformly from [lo, hi) by `rng`.
  onnx::TensorProto* weight(const std::string& name, const std::vector<int64_t>& dims, std::mt19937& rng, float lo,
                            float hi) {
    auto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    int64_t n = 1;
    for (int64_t d : dims) t->add_dims(d), n *= d;
    std::uniform_real_distribution<float> u(lo, hi);
    for (int64_t i = 0; i < n; ++i) t->add_float_data(u(rng));
    return t;
  }
  // The same from [-scale, scale) with a generator of its own, seeded with `seed`.
  onnx::TensorProto* weight(const std::string& name, const std::vector<int64_t>& dims, uint32_t seed, float scale) {
    std::mt19937 rng(seed);
    return weight(name, dims, rng, -scale, scale);
  }
  // A 1-D int64 initializer (shapes, axes).
  onnx::TensorProto* ints(const std::string& name, const std::vector<int64_t>& v) {
    auto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(int64_t(v.size()));
    for (int64_t x : v) t->add_int64_data(x);
    return t;
  }
  onnx::NodeProto* node(const std::string& op, const std::string& name, const std::vector<std::string>& in,
                        const std::string& out) {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : in) n->add_input(i);
    n->add_output(out);
    return n;
  }
  static void attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  // Writes the model to `path`, or to the temp directory where `path` is a bare file name.
  std::string save(const std::string& path) const {
    std::filesystem::path p(path);
    if (!p.has_parent_path()) p = std::filesystem::temp_directory_path() / p;
    std::ofstream f(p, std::ios::binary);
    m_.SerializeToOstream(&f);
    return p.string();
  }

 private:
  onnx::ModelProto m_;
  onnx::GraphProto* g_;
};

// Builds `onnx` with `cfg` and loads the engine; a failure of either fails the test and
// returns null.
inline std::shared_ptr<Engine> buildEngine(const std::string& onnx, const BuilderConfig& cfg,
                                           BuildReport* report = nullptr) {
  std::string bytes;
  BuildReport r;
  Status s = Builder::buildFromOnnx(onnx, cfg, &bytes, report ? report : &r);
  EXPECT_TRUE(s.isOk()) << s.message();
  if (!s.isOk()) return nullptr;
  std::shared_ptr<Engine> e;
  s = Engine::fromBytes(std::move(bytes), &e);
  EXPECT_TRUE(s.isOk()) << s.message();
  return e;
}

}  // namespace anvil::test
