// Bad models give clear errors that name the node and op, never a crash: hand-made
// defects (truncation, missing initializer, unknown op, unsupported opset, inconsistent
// shapes, dangling inputs, bad external data) and a corpus of randomly mutated files.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "cpu/reference.h"
#include "parser/onnx_parser.h"
#include "tests/onnx_writer.h"

namespace fs = std::filesystem;
using anvil::Error;
using anvil::ErrorCode;

namespace {

// x[2,3] + w[2,3] -> Relu -> y, with w an initializer.
onnx::ModelProto goodModel(int opset = 17) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  auto* g = m.mutable_graph();
  g->set_name("g");
  *g->add_input() = anvil::test::valueInfo("x", {2, 3});
  *g->add_output() = anvil::test::valueInfo("y", {2, 3});
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(2);
  w->add_dims(3);
  for (int i = 0; i < 6; ++i) w->add_float_data(float(i) - 2.5f);
  auto* add = g->add_node();
  add->set_op_type("Add");
  add->set_name("add0");
  add->add_input("x");
  add->add_input("w");
  add->add_output("s");
  auto* relu = g->add_node();
  relu->set_op_type("Relu");
  relu->set_name("relu0");
  relu->add_input("s");
  relu->add_output("y");
  return m;
}

// Parses and returns the error; fails the test if parsing succeeds.
Error parseError(const std::string& bytes, const std::string& baseDir = "") {
  try {
    anvil::parser::parseOnnxBytes(bytes, baseDir);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "parsing succeeded but should have failed";
  return Error(ErrorCode::kOk, "");
}

}  // namespace

TEST(BadInput, GoodModelParsesAndRuns) {
  auto model = anvil::parser::parseOnnxBytes(goodModel().SerializeAsString(), "");
  anvil::ir::Tensor x(anvil::ir::DataType::kF32, {2, 3});
  for (int i = 0; i < 6; ++i) x.data<float>()[i] = 1.0f;
  auto out = anvil::cpu::Interpreter::run(*model.graph, {{"x", x}});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data<float>()[0], 0.0f);   // relu(1 - 2.5)
  EXPECT_EQ(out[0].data<float>()[5], 3.5f);   // relu(1 + 2.5)
}

TEST(BadInput, EmptyAndTruncated) {
  EXPECT_EQ(parseError("").code(), ErrorCode::kInvalidModel);
  std::string bytes = goodModel().SerializeAsString();
  for (size_t cut : {size_t(1), size_t(7), bytes.size() / 2, bytes.size() - 3}) {
    Error e = parseError(bytes.substr(0, cut));
    EXPECT_NE(std::string(e.what()).find("not a valid ONNX protobuf"), std::string::npos) << e.what();
  }
}

TEST(BadInput, MissingInitializerNamesNode) {
  auto m = goodModel();
  m.mutable_graph()->clear_initializer();
  Error e = parseError(m.SerializeAsString());
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_NE(std::string(e.what()).find("Add 'add0'"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("'w'"), std::string::npos) << e.what();
}

TEST(BadInput, UnknownOpNamesNodeAndOp) {
  auto m = goodModel();
  m.mutable_graph()->mutable_node(1)->set_op_type("FrobnicateX");
  Error e = parseError(m.SerializeAsString());
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(e.what()).find("FrobnicateX 'relu0'"), std::string::npos) << e.what();
}

TEST(BadInput, UnsupportedOpset) {
  Error e = parseError(goodModel(99).SerializeAsString());
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(e.what()).find("opset 99"), std::string::npos) << e.what();
}

TEST(BadInput, OpsetBelowImporterRange) {
  auto m = goodModel(17);
  m.mutable_graph()->mutable_node(1)->set_op_type("Gelu");  // an ONNX op only since opset 20
  Error e = parseError(m.SerializeAsString());
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(e.what()).find("Gelu 'relu0'"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("opset 17"), std::string::npos) << e.what();
}

TEST(BadInput, InconsistentShapesNameNode) {
  auto m = goodModel();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_dims();
  w->clear_float_data();
  w->add_dims(4);
  for (int i = 0; i < 4; ++i) w->add_float_data(1.0f);
  Error e = parseError(m.SerializeAsString());
  EXPECT_EQ(e.code(), ErrorCode::kShapeMismatch);
  EXPECT_NE(std::string(e.what()).find("Add 'add0'"), std::string::npos) << e.what();
}

TEST(BadInput, DanglingInputAndOutput) {
  auto m = goodModel();
  m.mutable_graph()->mutable_node(1)->set_input(0, "nowhere");
  Error e = parseError(m.SerializeAsString());
  EXPECT_NE(std::string(e.what()).find("Relu 'relu0'"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("'nowhere'"), std::string::npos) << e.what();

  auto m2 = goodModel();
  m2.mutable_graph()->mutable_output(0)->set_name("ghost");
  Error e2 = parseError(m2.SerializeAsString());
  EXPECT_NE(std::string(e2.what()).find("'ghost'"), std::string::npos) << e2.what();
}

TEST(BadInput, InitializerDataDisagreesWithShape) {
  auto m = goodModel();
  m.mutable_graph()->mutable_initializer(0)->add_dims(1000000000);
  Error e = parseError(m.SerializeAsString());
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_NE(std::string(e.what()).find("tensor 'w'"), std::string::npos) << e.what();
}

TEST(BadInput, ExternalData) {
  fs::path dir = fs::temp_directory_path() / "anvil_bad_input_ext";
  fs::create_directories(dir);
  auto m = goodModel();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* loc = w->add_external_data();
  loc->set_key("location");
  loc->set_value("weights.bin");
  // Missing side file.
  fs::remove(dir / "weights.bin");
  {
    std::ofstream f(dir / "m.onnx", std::ios::binary);
    f << m.SerializeAsString();
  }
  try {
    anvil::parser::parseOnnxFile((dir / "m.onnx").string());
    FAIL() << "missing external data accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIoError);
    EXPECT_NE(std::string(e.what()).find("weights.bin"), std::string::npos) << e.what();
  }
  // Side file too short.
  {
    std::ofstream f(dir / "weights.bin", std::ios::binary);
    float v[3] = {1, 2, 3};
    f.write(reinterpret_cast<const char*>(v), sizeof v);
  }
  EXPECT_THROW(anvil::parser::parseOnnxFile((dir / "m.onnx").string()), Error);
  // Correct side file, with an offset.
  {
    std::ofstream f(dir / "weights.bin", std::ios::binary);
    float v[8] = {99, 99, 1, 2, 3, 4, 5, 6};
    f.write(reinterpret_cast<const char*>(v), sizeof v);
  }
  auto* off = w->add_external_data();
  off->set_key("offset");
  off->set_value("8");
  {
    std::ofstream f(dir / "m.onnx", std::ios::binary);
    f << m.SerializeAsString();
  }
  auto model = anvil::parser::parseOnnxFile((dir / "m.onnx").string());
  const anvil::ir::Tensor* t = model.graph->findValue("w")->initializer();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->data<float>()[0], 1.0f);
  EXPECT_EQ(t->data<float>()[5], 6.0f);
  fs::remove_all(dir);
}

TEST(BadInput, SupportCheckListsEveryUnsupportedNode) {
  auto m = goodModel();
  m.mutable_graph()->mutable_node(0)->set_op_type("NotAnOp1");
  m.mutable_graph()->mutable_node(1)->set_op_type("NotAnOp2");
  fs::path p = fs::temp_directory_path() / "anvil_support_check.onnx";
  {
    std::ofstream f(p, std::ios::binary);
    f << m.SerializeAsString();
  }
  auto issues = anvil::parser::checkSupport(p.string());
  ASSERT_EQ(issues.size(), 2u);
  EXPECT_EQ(issues[0].op, "NotAnOp1");
  EXPECT_EQ(issues[0].node, "add0");
  EXPECT_EQ(issues[1].op, "NotAnOp2");
  fs::remove(p);
}

// Random truncations, byte flips, insertions and deletions of a real model file: each
// either parses (and then runs or fails cleanly) or throws anvil::Error. A crash fails
// the whole binary, so reaching the end is the assertion; the counters show coverage.
TEST(BadInput, MutatedCorpusNeverCrashes) {
  std::ifstream f(std::string(ANVIL_SOURCE_DIR) + "/examples/models/tiny_cnn.onnx", std::ios::binary);
  ASSERT_TRUE(f.good());
  std::string original((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::mt19937 rng(1234);
  int rejected = 0, accepted = 0;
  const int kCases = 600;
  for (int i = 0; i < kCases; ++i) {
    std::string bytes = original;
    // Mutations concentrate on the first 2 KB (graph structure) half of the time.
    const size_t span = (i % 2) ? bytes.size() : std::min<size_t>(bytes.size(), 2048);
    switch (i % 4) {
      case 0: bytes.resize(rng() % bytes.size()); break;
      case 1:
        for (int k = 0; k < 1 + int(rng() % 4); ++k) bytes[rng() % span] ^= char(1u << (rng() % 8));
        break;
      case 2: bytes.insert(rng() % span, 1 + rng() % 8, char(rng())); break;
      case 3: bytes.erase(rng() % span, 1 + rng() % 8); break;
    }
    try {
      auto model = anvil::parser::parseOnnxBytes(bytes, "");
      ++accepted;
      const auto* in = model.graph->inputs().empty() ? nullptr : model.graph->inputs()[0];
      if (in && in->shape().rankKnown() && in->dtype() == anvil::ir::DataType::kF32) {
        std::vector<int64_t> dims;
        for (const auto& d : in->shape().dims()) dims.push_back(d.isStatic() ? d.value() : 1);
        if (anvil::ir::numelOf(dims) < (1 << 20)) {
          try {
            anvil::cpu::Interpreter::run(*model.graph, {{in->name(), anvil::ir::Tensor(in->dtype(), dims)}});
          } catch (const Error&) {
          }
        }
      }
    } catch (const Error& e) {
      ++rejected;
      EXPECT_GT(std::string(e.what()).size(), 10u);
    }
  }
  EXPECT_EQ(rejected + accepted, kCases);
  EXPECT_GT(rejected, kCases / 4);
  std::cout << "mutated corpus: " << rejected << " rejected with an error, " << accepted << " still valid\n";
}
