// GGUF against the reference (PyPI gguf, fixtures from tools/gen_gguf_fixtures.py): every tensor
// type dequantised bit for bit, a file written by gguf.GGUFWriter read back value for value, and
// rows of the real SmolLM2 file.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "fathom/core/shared_path.hpp"
#include "fathom/io/gguf.hpp"
#include "fathom/io/gguf_quants.hpp"
#include "fathom/io/json.hpp"
#include "fathom/io/safetensors.hpp"
#include "gguf_test_writer.hpp"
#include "io_test_util.hpp"

using namespace fathom;
using namespace fathom::io;
using fathom::test::contains;
using fathom::test::expect_error;

namespace {

const std::string kDir = "fixtures/gguf/";

// Number of elements whose f32 bits differ (NaNs included: the reference's are exact too).
size_t bit_mismatches(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::bit_cast<uint32_t>(got[i]) != std::bit_cast<uint32_t>(want[i])) {
      if (bad < 3) MESSAGE("element " << i << ": got " << got[i] << ", reference " << want[i]);
      ++bad;
    }
  return bad;
}

GgufValueType value_type(const std::string& name) {
  static const char* names[] = {"UINT8", "INT8",  "UINT16", "INT16",  "UINT32", "INT32", "FLOAT32",
                                "BOOL",  "STRING", "ARRAY", "UINT64", "INT64",  "FLOAT64"};
  for (uint32_t i = 0; i < 13; ++i)
    if (name == names[i]) return GgufValueType(i);
  FAIL("unknown type name " << name);
  return GgufValueType::UINT8;
}

// Compares a value with its JSON record: {"elem_type", "items"} for arrays, else the scalar.
void check_value(const GgufValue& v, GgufValueType type, const Json& want, const std::string& key) {
  CAPTURE(key);
  REQUIRE(v.type == type);
  switch (type) {
    case GgufValueType::ARRAY: {
      const auto et = value_type(want.at("elem_type").get<std::string>());
      CHECK(v.elem_type == et);
      const auto& items = want.at("items");
      REQUIRE(v.array().size() == items.size());
      for (size_t i = 0; i < items.size(); ++i) check_value(v.array()[i], et, items[i], key + "[" + std::to_string(i) + "]");
      break;
    }
    case GgufValueType::STRING: CHECK(v.str() == want.get<std::string>()); break;
    case GgufValueType::BOOL: CHECK(v.b() == want.get<bool>()); break;
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64: CHECK(v.f() == want.get<double>()); break;
    default:
      if (gguf_is_unsigned(type)) CHECK(v.u() == want.get<uint64_t>());
      else CHECK(v.i() == want.get<int64_t>());
  }
}

}  // namespace

TEST_CASE("gguf quants: every type equals gguf.quants.dequantize bit for bit") {
  auto store = load_safetensors(kDir + "quants.safetensors");
  const GgmlType types[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                            GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
                            GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
  for (GgmlType t : types) {
    const std::string name(ggml_type_name(t));
    CAPTURE(name);
    CHECK(ggml_type_supported(t));
    const TensorView& data = store.get(name + ".data");
    const std::vector<float> want = to_f32(store.get(name + ".expected"));
    REQUIRE(data.nbytes / ggml_block_bytes(t) * ggml_block_elems(t) == want.size());
    REQUIRE(data.nbytes % ggml_block_bytes(t) == 0);
    std::vector<float> got(want.size(), -1.0f);
    dequantize(t, data.data, got.size(), got.data());
    CHECK(bit_mismatches(got, want) == 0);
    // Unaligned source bytes give the same result (GGUF promises only the file's alignment).
    std::vector<std::byte> shifted(data.nbytes + 1);
    std::memcpy(shifted.data() + 1, data.data, data.nbytes);
    std::vector<float> got2(want.size());
    dequantize(t, shifted.data() + 1, got2.size(), got2.data());
    CHECK(bit_mismatches(got2, want) == 0);
  }
}

TEST_CASE("gguf quants: a quantised fixture is not trivially zero") {
  // Guards the test above against an all-zero fixture: every quantised type has both signs and
  // many distinct values.
  auto store = load_safetensors(kDir + "quants.safetensors");
  for (const char* name : {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"}) {
    CAPTURE(name);
    auto v = to_f32(store.get(std::string(name) + ".expected"));
    std::sort(v.begin(), v.end());
    CHECK(v.front() < 0);
    CHECK(v.back() > 0);
    CHECK(std::unique(v.begin(), v.end()) - v.begin() > 20);
  }
}

TEST_CASE("gguf quants: element count not a multiple of the block") {
  std::vector<std::byte> b(34);
  std::vector<float> y(40);
  auto e = expect_error<UsageError>([&] { dequantize(GgmlType::Q8_0, b.data(), 40, y.data()); });
  CHECK(e.field() == "Q8_0");
  CHECK(contains(e.reason(), "40 elements is not a multiple of the block of 32"));
}

TEST_CASE("gguf quants: unsupported type") {
  std::vector<std::byte> b(256);
  std::vector<float> y(256);
  auto e = expect_error<UnsupportedError>([&] { dequantize(GgmlType::IQ4_XS, b.data(), 256, y.data()); });
  CHECK(e.field() == "IQ4_XS");
  // Through a file: the error names the file and the tensor.
  fathom::test::GgufBuilder g;
  g.tensor("blk.0.ffn_up.weight", uint32_t(GgmlType::IQ4_NL), {32}, std::string(18, '\0'));
  const std::string s = g.build();
  auto f = GgufFile::parse(fathom::test::as_bytes(s), "iq.gguf");
  auto e2 = expect_error<UnsupportedError>([&] { dequantize_tensor(f, *f.tensor("blk.0.ffn_up.weight")); });
  CHECK(e2.file() == "iq.gguf");
  CHECK(e2.field() == "blk.0.ffn_up.weight");
  CHECK(contains(e2.reason(), "IQ4_NL is not supported"));
}

TEST_CASE("gguf: a file written by gguf.GGUFWriter reads as gguf.GGUFReader reads it") {
  auto f = GgufFile::open(kDir + "writer.gguf");
  const Json want = read_json_file(kDir + "writer.json");
  CHECK(f.version() == want.at("version").get<uint32_t>());
  CHECK(f.alignment() == want.at("alignment").get<size_t>());
  CHECK(f.data_offset() == want.at("data_offset").get<uint64_t>());

  const auto& kvs = want.at("kvs");
  const auto keys = f.keys();
  REQUIRE(keys.size() == kvs.size());
  for (size_t i = 0; i < kvs.size(); ++i) {
    const std::string key = kvs[i].at("key").get<std::string>();
    CHECK(keys[i] == key);
    const GgufValue* v = f.find(key);
    REQUIRE(v);
    check_value(*v, value_type(kvs[i].at("type")[0].get<std::string>()), kvs[i].at("value"), key);
  }
  // Spot checks through the typed getters.
  CHECK(f.get_string("general.architecture") == "llama");
  CHECK(f.get_int("test.i64") == INT64_MIN);
  CHECK(f.get_uint("test.u64") == UINT64_MAX);
  CHECK(f.get_float("test.f32") == double(0.1f));
  CHECK(f.get_string("test.string") == "héllo, GGUF ✓");
  CHECK(f.get_string_array("test.strings") == std::vector<std::string>{"a", "bc", "", "Ġthe"});
  CHECK(f.get_int_array("test.int64s") == std::vector<int64_t>{-(int64_t(1) << 40), 7});
  CHECK(f.get_float_array("test.float64s") == std::vector<float>{float(1.0 / 3.0), -2.5f});
  CHECK(f.find("test.nested2")->type_name() == "array of array of array of float32");

  auto expected = load_safetensors(kDir + "writer_expected.safetensors");
  const auto& ts = want.at("tensors");
  REQUIRE(f.tensors().size() == ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const GgufTensor& t = f.tensors()[i];
    CAPTURE(t.name);
    CHECK(t.name == ts[i].at("name").get<std::string>());
    CHECK(uint32_t(t.type) == ts[i].at("type").get<uint32_t>());
    CHECK(t.ne == ts[i].at("ne").get<std::vector<int64_t>>());
    CHECK(t.offset == ts[i].at("offset").get<uint64_t>());
    CHECK(t.nbytes == ts[i].at("nbytes").get<size_t>());
    CHECK(bit_mismatches(dequantize_tensor(f, t), to_f32(expected.get(t.name))) == 0);
  }
}

TEST_CASE("gguf: the reference writer's big-endian file is refused") {
  auto e = expect_error<UnsupportedError>([] { GgufFile::open(kDir + "writer_be.gguf"); });
  CHECK(contains(e.file(), "writer_be.gguf"));
  CHECK(e.field() == "version");
  CHECK(contains(e.reason(), "big-endian GGUF is not supported"));
}

TEST_CASE("gguf quants: rows of the real SmolLM2 file equal the reference") {
  const auto path = shared_file("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
  auto f = GgufFile::open(path);
  auto expected = load_safetensors(kDir + "smollm2_rows.safetensors");
  for (const char* name : {"token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight", "output_norm.weight"}) {
    CAPTURE(name);
    const GgufTensor* t = f.tensor(name);
    REQUIRE(t);
    const size_t rows = std::min<size_t>(2, t->numel() / size_t(t->ne[0]));
    std::vector<float> got(rows * size_t(t->ne[0]));
    dequantize(t->type, t->data, got.size(), got.data());
    CHECK(bit_mismatches(got, to_f32(expected.get(name))) == 0);
  }
}
