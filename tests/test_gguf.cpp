// GGUF reader: a valid file of every value type, the typed getters, the real SmolLM2 file, and one
// test per malformed input (each built byte by byte with GgufBuilder).
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "fathom/core/shared_path.hpp"
#include "fathom/io/gguf.hpp"
#include "gguf_test_writer.hpp"
#include "io_test_util.hpp"

using namespace fathom;
using namespace fathom::io;
using fathom::test::as_bytes;
using fathom::test::contains;
using fathom::test::expect_error;
using fathom::test::GgufBuilder;

namespace {

constexpr uint32_t kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kStr = 8,
                   kArr = 9, kU64 = 10, kI64 = 11, kF64 = 12;
constexpr uint32_t kTypeF32 = 0, kTypeQ4_1 = 3, kTypeQ8_0 = 8;

std::string f32_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

// Parses `s` (kept alive by the caller) as "t.gguf".
GgufFile parse(const std::string& s) { return GgufFile::parse(as_bytes(s), "t.gguf"); }

template <class E>
E parse_error(const std::string& s) {
  return expect_error<E>([&] { parse(s); });
}

// A valid file with one F32 tensor "w" of 4 elements, plus whatever `b` already holds.
GgufBuilder with_tensor(GgufBuilder b = {}) {
  b.tensor("w", kTypeF32, {4}, f32_bytes({1, 2, 3, 4}));
  return b;
}

}  // namespace

TEST_CASE("gguf: every value type, nested arrays, tensors and getters") {
  GgufBuilder b;
  b.kv("u8", kU8, GgufBuilder::raw<uint8_t>(200))
      .kv("i8", kI8, GgufBuilder::raw<int8_t>(-100))
      .kv("u16", kU16, GgufBuilder::raw<uint16_t>(60000))
      .kv("i16", kI16, GgufBuilder::raw<int16_t>(-30000))
      .kv_u32("u32", 4000000000u)
      .kv("i32", kI32, GgufBuilder::raw<int32_t>(-2000000000))
      .kv("f32", kF32, GgufBuilder::raw<float>(0.1f))
      .kv("bool", kBool, GgufBuilder::raw<uint8_t>(1))
      .kv_str("str", "héllo")
      .kv("u64", kU64, GgufBuilder::raw<uint64_t>(~0ull))
      .kv("i64", kI64, GgufBuilder::raw<int64_t>(-(1ll << 50)))
      .kv("f64", kF64, GgufBuilder::raw<double>(1e-300))
      .kv("strs", kArr, GgufBuilder::array_value(kStr, 3, GgufBuilder::str_value("a") + GgufBuilder::str_value("") +
                                                              GgufBuilder::str_value("ccc")))
      .kv("ints", kArr, GgufBuilder::array_value(kI32, 2, GgufBuilder::raw<int32_t>(-5) + GgufBuilder::raw<int32_t>(7)))
      .kv("floats", kArr, GgufBuilder::array_value(kF32, 2, GgufBuilder::raw<float>(1.5f) + GgufBuilder::raw<float>(-0.25f)))
      .kv("nested", kArr,
          GgufBuilder::array_value(kArr, 2, GgufBuilder::array_value(kU8, 2, "\x01\x02") +
                                                GgufBuilder::array_value(kStr, 1, GgufBuilder::str_value("x"))))
      .kv("empty", kArr, GgufBuilder::array_value(kF64, 0, ""));
  b.tensor("w", kTypeF32, {2, 3}, f32_bytes({1, 2, 3, 4, 5, 6}));
  b.tensor("q", kTypeQ8_0, {32, 2}, std::string(68, '\x01'));
  const std::string s = b.build();
  auto f = parse(s);

  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  CHECK(f.path() == "t.gguf");
  CHECK(f.keys() == std::vector<std::string>{"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "u64",
                                             "i64", "f64", "strs", "ints", "floats", "nested", "empty"});
  CHECK(f.get_uint("u8") == 200);
  CHECK(f.get_int("i8") == -100);
  CHECK(f.get_uint("u16") == 60000);
  CHECK(f.get_int("i16") == -30000);
  CHECK(f.get_uint("u32") == 4000000000u);
  CHECK(f.get_int("u32") == 4000000000ll);
  CHECK(f.get_int("i32") == -2000000000);
  CHECK(f.get_float("f32") == double(0.1f));
  CHECK(f.get_bool("bool"));
  CHECK(f.get_string("str") == "héllo");
  CHECK(f.get_uint("u64") == ~0ull);
  CHECK(f.get_int("i64") == -(1ll << 50));
  CHECK(f.get_float("f64") == 1e-300);
  CHECK(f.get_string_array("strs") == std::vector<std::string>{"a", "", "ccc"});
  CHECK(f.get_int_array("ints") == std::vector<int64_t>{-5, 7});
  CHECK(f.get_float_array("floats") == std::vector<float>{1.5f, -0.25f});
  CHECK(f.get_float_array("empty").empty());
  CHECK(f.find("f32")->type == GgufValueType::FLOAT32);
  CHECK(f.find("ints")->elem_type == GgufValueType::INT32);
  const GgufValue* nested = f.find("nested");
  REQUIRE(nested);
  CHECK(nested->type_name() == "array of array of uint8");
  REQUIRE(nested->array().size() == 2);
  CHECK(nested->array()[0].elem_type == GgufValueType::UINT8);
  CHECK(nested->array()[0].array()[1].u() == 2);
  CHECK(nested->array()[1].elem_type == GgufValueType::STRING);
  CHECK(nested->array()[1].array()[0].str() == "x");
  CHECK(!f.has("nope"));
  CHECK(f.find("nope") == nullptr);

  REQUIRE(f.tensors().size() == 2);
  const GgufTensor* w = f.tensor("w");
  REQUIRE(w);
  CHECK(w->type == GgmlType::F32);
  CHECK(w->ne == std::vector<int64_t>{2, 3});
  CHECK(w->shape() == std::vector<int64_t>{3, 2});
  CHECK(w->numel() == 6);
  CHECK(w->nbytes == 24);
  CHECK(w->offset == 0);
  float w5;
  std::memcpy(&w5, w->data + 5 * 4, 4);
  CHECK(w5 == 6.0f);
  const GgufTensor* q = f.tensor("q");
  REQUIRE(q);
  CHECK(q->type == GgmlType::Q8_0);
  CHECK(q->nbytes == 68);
  CHECK(q->offset == 32);
  CHECK(q->data == w->data + 32);
  CHECK(f.data_offset() + q->offset + q->nbytes == s.size());
  CHECK(f.tensor("nope") == nullptr);
}

TEST_CASE("gguf: getters name the key and say what was expected and found") {
  GgufBuilder b;
  b.kv_str("s", "x").kv("neg", kI32, GgufBuilder::raw<int32_t>(-1)).kv("big", kU64, GgufBuilder::raw<uint64_t>(~0ull));
  b.kv("ints", kArr, GgufBuilder::array_value(kU64, 1, GgufBuilder::raw<uint64_t>(~0ull)));
  const std::string s = b.build();
  auto f = parse(s);
  auto e = expect_error<FormatError>([&] { f.get_string("missing.key"); });
  CHECK(e.file() == "t.gguf");
  CHECK(e.field() == "missing.key");
  CHECK(e.reason() == "missing");
  e = expect_error<FormatError>([&] { f.get_uint("s"); });
  CHECK(e.field() == "s");
  CHECK(e.reason() == "expected an unsigned integer, found string");
  e = expect_error<FormatError>([&] { f.get_float("neg"); });
  CHECK(e.reason() == "expected float32 or float64, found int32");
  e = expect_error<FormatError>([&] { f.get_bool("s"); });
  CHECK(e.reason() == "expected bool, found string");
  e = expect_error<FormatError>([&] { f.get_string_array("ints"); });
  CHECK(e.reason() == "expected array of string, found array of uint64");
  e = expect_error<FormatError>([&] { f.get_float_array("s"); });
  CHECK(contains(e.reason(), "found string"));
  e = expect_error<FormatError>([&] { f.get_uint("neg"); });
  CHECK(contains(e.reason(), "non-negative"));
  e = expect_error<FormatError>([&] { f.get_int("big"); });
  CHECK(contains(e.reason(), "does not fit in int64"));
  e = expect_error<FormatError>([&] { f.get_int_array("ints"); });
  CHECK(e.field() == "ints");
  CHECK(contains(e.reason(), "does not fit in int64"));
}

TEST_CASE("gguf: version 2 is read like version 3") {
  GgufBuilder b = with_tensor();
  b.version = 2;
  const std::string s = b.build();
  auto f = parse(s);
  CHECK(f.version() == 2);
  CHECK(f.tensor("w")->nbytes == 16);
}

TEST_CASE("gguf: bad magic") {
  std::string s = with_tensor().build();
  s[3] = 'X';
  auto e = parse_error<FormatError>(s);
  CHECK(e.field() == "magic");
  CHECK(contains(e.reason(), "not a GGUF file"));
  CHECK(parse_error<FormatError>("GG").field() == "magic");
}

TEST_CASE("gguf: version 1 is unsupported") {
  GgufBuilder b = with_tensor();
  b.version = 1;
  auto e = parse_error<UnsupportedError>(b.build());
  CHECK(e.field() == "version");
  CHECK(contains(e.reason(), "version 1 is not supported"));
}

TEST_CASE("gguf: unknown version is unsupported") {
  GgufBuilder b = with_tensor();
  b.version = 4;
  auto e = parse_error<UnsupportedError>(b.build());
  CHECK(e.field() == "version");
  CHECK(contains(e.reason(), "version 4 is not supported"));
}

TEST_CASE("gguf: big-endian file") {
  GgufBuilder b = with_tensor();
  b.version = 0x03000000;  // 3 as a big-endian writer stores it
  auto e = parse_error<UnsupportedError>(b.build());
  CHECK(e.field() == "version");
  CHECK(contains(e.reason(), "big-endian GGUF is not supported"));
}

TEST_CASE("gguf: truncated header") {
  const std::string s = with_tensor().build().substr(0, 12);
  auto e = parse_error<FormatError>(s);
  CHECK(e.field() == "tensor_count");
  CHECK(contains(e.reason(), "runs past the end of the file"));
}

TEST_CASE("gguf: tensor count that overflows") {
  auto e = parse_error<FormatError>(with_tensor().build(int64_t(~0ull >> 1)));
  CHECK(e.field() == "tensor_count");
  CHECK(contains(e.reason(), "cannot fit"));
  std::string s = with_tensor().build();
  std::memset(s.data() + 8, 0xff, 8);  // 2^64 - 1
  CHECK(parse_error<FormatError>(s).field() == "tensor_count");
}

TEST_CASE("gguf: kv count beyond what the file holds") {
  GgufBuilder b;
  b.kv_str("a", "b");
  auto e = parse_error<FormatError>(b.build(0, 1000));
  CHECK(e.field() == "kv_count");
  CHECK(contains(e.reason(), "1000 metadata entries cannot fit"));
}

TEST_CASE("gguf: kv count larger than the entries present") {
  GgufBuilder b;
  b.kv_str("a", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
  auto e = parse_error<FormatError>(b.build(0, 2));
  CHECK(e.field() == "kv[1]");
  CHECK(contains(e.reason(), "key"));
  CHECK(contains(e.reason(), "runs past the end of the file"));
}

TEST_CASE("gguf: key length beyond the end of the file") {
  GgufBuilder b;
  GgufBuilder::put_u64(b.kvs, 1000);
  b.kvs += "abcdefghijklmnopqrstuvwxyz";
  b.n_kv = 1;
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "kv[0]");
  CHECK(contains(e.reason(), "runs past the end of the file"));
}

TEST_CASE("gguf: string value length beyond the end of the file") {
  GgufBuilder b;
  std::string v;
  GgufBuilder::put_u64(v, ~0ull);
  b.kv("general.name", kStr, v + "abc");
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "general.name");
  CHECK(contains(e.reason(), "string value"));
  CHECK(contains(e.reason(), "runs past the end of the file"));
}

TEST_CASE("gguf: array length beyond the end of the file") {
  GgufBuilder b;
  b.kv("tokenizer.ggml.scores", kArr, GgufBuilder::array_value(kF32, 1ull << 40, GgufBuilder::raw<float>(1)));
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "tokenizer.ggml.scores");
  CHECK(contains(e.reason(), "array of 1099511627776 float32 runs past the end of the file"));
}

TEST_CASE("gguf: array of strings whose count exceeds the file") {
  GgufBuilder b;
  b.kv("toks", kArr, GgufBuilder::array_value(kStr, 3, GgufBuilder::str_value("a") + GgufBuilder::str_value("b")));
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "toks");
  CHECK(contains(e.reason(), "runs past the end of the file"));
}

TEST_CASE("gguf: nesting deeper than the limit") {
  std::string v = GgufBuilder::array_value(kU8, 1, "\x07");
  for (int d = 1; d < kGgufMaxNesting; ++d) v = GgufBuilder::array_value(kArr, 1, v);
  GgufBuilder ok;
  ok.kv("deep", kArr, v);
  const std::string s = ok.build();
  auto f = parse(s);  // exactly the limit: accepted
  const GgufValue* x = f.find("deep");
  for (int d = 0; d < kGgufMaxNesting; ++d) x = &x->array()[0];
  CHECK(x->u() == 7);
  GgufBuilder bad;
  bad.kv("deep", kArr, GgufBuilder::array_value(kArr, 1, v));
  auto e = parse_error<FormatError>(bad.build());
  CHECK(e.field() == "deep");
  CHECK(contains(e.reason(), "nested deeper than 8 levels"));
}

TEST_CASE("gguf: unknown value type") {
  GgufBuilder b;
  b.kv("k", 13, GgufBuilder::raw<uint32_t>(0));
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "k");
  CHECK(e.reason() == "unknown value type 13");
}

TEST_CASE("gguf: unknown array element type") {
  GgufBuilder b;
  b.kv("k", kArr, GgufBuilder::array_value(99, 0, ""));
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "k");
  CHECK(e.reason() == "unknown array element type 99");
}

TEST_CASE("gguf: bool that is neither 0 nor 1") {
  GgufBuilder b;
  b.kv("tokenizer.ggml.add_bos_token", kBool, "\x02");
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "tokenizer.ggml.add_bos_token");
  CHECK(contains(e.reason(), "neither 0 nor 1"));
}

TEST_CASE("gguf: duplicate key") {
  GgufBuilder b;
  b.kv_str("general.name", "a").kv_u32("general.name", 1);
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "general.name");
  CHECK(e.reason() == "duplicate key");
}

TEST_CASE("gguf: general.alignment not a power of two") {
  GgufBuilder b;
  b.kv_u32("general.alignment", 48);
  auto e = parse_error<FormatError>(with_tensor(b).build());
  CHECK(e.field() == "general.alignment");
  CHECK(contains(e.reason(), "48 is not a power of two"));
  GgufBuilder z;
  z.kv_u32("general.alignment", 0);
  CHECK(parse_error<FormatError>(with_tensor(z).build()).field() == "general.alignment");
}

TEST_CASE("gguf: general.alignment not uint32") {
  GgufBuilder b;
  b.kv("general.alignment", kU64, GgufBuilder::raw<uint64_t>(32));
  auto e = parse_error<FormatError>(with_tensor(b).build());
  CHECK(e.field() == "general.alignment");
  CHECK(e.reason() == "expected uint32, found uint64");
}

TEST_CASE("gguf: a custom alignment places the data section and tensors") {
  GgufBuilder b;
  b.alignment = 64;
  b.kv_u32("general.alignment", 64);
  b.tensor("a", kTypeF32, {1}, f32_bytes({1}));
  b.tensor("b", kTypeF32, {3}, f32_bytes({2, 3, 4}));
  const std::string s = b.build();
  auto f = parse(s);
  CHECK(f.alignment() == 64);
  CHECK(f.data_offset() % 64 == 0);
  CHECK(f.tensor("b")->offset == 64);
  float v;
  std::memcpy(&v, f.tensor("b")->data + 8, 4);
  CHECK(v == 4.0f);
}

TEST_CASE("gguf: tensor info cut off by the end of the file") {
  const std::string name(40, 'w');
  GgufBuilder b;
  b.tensor(name, kTypeF32, {4}, f32_bytes({1, 2, 3, 4}));
  const std::string s = b.build().substr(0, 24 + 8 + 40 + 4 + 2);  // ends inside ne[0]
  auto e = parse_error<FormatError>(s);
  CHECK(e.field() == name);
  CHECK(contains(e.reason(), "dimension"));
  CHECK(contains(e.reason(), "runs past the end of the file"));
}

TEST_CASE("gguf: empty tensor name") {
  GgufBuilder b = with_tensor();
  b.tensor("", kTypeF32, {4}, f32_bytes({1, 2, 3, 4}));
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "tensor[1]");
  CHECK(e.reason() == "empty tensor name");
}

TEST_CASE("gguf: unknown tensor type") {
  GgufBuilder b;
  b.info("blk.0.attn_q.weight", 77, {32}, 0);
  b.data = std::string(64, '\0');
  auto e = parse_error<UnsupportedError>(b.build());
  CHECK(e.field() == "blk.0.attn_q.weight");
  CHECK(e.reason() == "unknown ggml tensor type 77");
}

TEST_CASE("gguf: removed ggml type id (Q4_2) is unknown") {
  GgufBuilder b;
  b.info("w", 4, {32}, 0);
  b.data = std::string(64, '\0');
  CHECK(parse_error<UnsupportedError>(b.build()).reason() == "unknown ggml tensor type 4");
}

TEST_CASE("gguf: n_dims 0") {
  GgufBuilder b;
  b.info("w", kTypeF32, {}, 0);
  b.data = std::string(64, '\0');
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "w");
  CHECK(contains(e.reason(), "n_dims 0"));
}

TEST_CASE("gguf: n_dims above 4") {
  GgufBuilder b;
  b.info("w", kTypeF32, {1, 1, 1, 1, 1}, 0);
  b.data = std::string(64, '\0');
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "w");
  CHECK(contains(e.reason(), "n_dims 5"));
}

TEST_CASE("gguf: zero dimension") {
  GgufBuilder b;
  b.info("w", kTypeF32, {4, 0}, 0);
  b.data = std::string(64, '\0');
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "w");
  CHECK(contains(e.reason(), "ne[1] = 0"));
}

TEST_CASE("gguf: negative dimension") {
  GgufBuilder b;
  b.info("w", kTypeF32, {~0ull}, 0);
  b.data = std::string(64, '\0');
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "w");
  CHECK(contains(e.reason(), "ne[0] = -1"));
}

TEST_CASE("gguf: dimensions whose product overflows") {
  GgufBuilder b;
  b.info("w", kTypeF32, {1ull << 32, 1ull << 32}, 0);
  b.data = std::string(64, '\0');
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "w");
  CHECK(contains(e.reason(), "overflows"));
}

TEST_CASE("gguf: byte count that overflows") {
  GgufBuilder b;
  b.info("w", kTypeF32, {1ull << 62}, 0);  // 2^62 elements x 4 bytes
  b.data = std::string(64, '\0');
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "w");
  CHECK(contains(e.reason(), "byte count overflows"));
}

TEST_CASE("gguf: duplicate tensor name") {
  GgufBuilder b;
  b.tensor("w", kTypeF32, {4}, f32_bytes({1, 2, 3, 4}));
  b.tensor("w", kTypeF32, {4}, f32_bytes({1, 2, 3, 4}));
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "w");
  CHECK(e.reason() == "duplicate tensor name");
}

TEST_CASE("gguf: data offset not a multiple of the alignment") {
  GgufBuilder b;
  b.info("w", kTypeF32, {4}, 8);
  b.data = std::string(64, '\0');
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "w");
  CHECK(contains(e.reason(), "data offset 8 is not a multiple of the alignment 32"));
}

TEST_CASE("gguf: data offset out of range") {
  GgufBuilder b;
  b.info("w", kTypeF32, {4}, 1ull << 40);
  b.data = std::string(64, '\0');
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "w");
  CHECK(contains(e.reason(), "runs past the end of the file"));
}

TEST_CASE("gguf: tensors that overlap") {
  GgufBuilder b;
  b.info("a", kTypeF32, {16}, 0);   // [0, 64)
  b.info("b", kTypeF32, {4}, 32);   // [32, 48)
  b.data = std::string(64, '\0');
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "b");
  CHECK(contains(e.reason(), "overlaps tensor a"));
}

TEST_CASE("gguf: element count not a multiple of the block size") {
  GgufBuilder b;
  b.info("token_embd.weight", kTypeQ8_0, {48, 2}, 0);
  b.data = std::string(256, '\0');
  auto e = parse_error<FormatError>(b.build());
  CHECK(e.field() == "token_embd.weight");
  CHECK(contains(e.reason(), "not a multiple of the Q8_0 block of 32 elements"));
}

TEST_CASE("gguf: tensor bytes beyond the end of the file") {
  GgufBuilder b;
  b.tensor("w", kTypeQ4_1, {64}, std::string(40, '\0'));  // 2 blocks of 20 bytes: complete
  std::string s = b.build();
  CHECK(parse(s).tensor("w")->nbytes == 40);
  auto e = parse_error<FormatError>(s.substr(0, s.size() - 1));
  CHECK(e.field() == "w");
  CHECK(contains(e.reason(), "data [0, +40 bytes) runs past the end of the file"));
}

TEST_CASE("gguf: data section padding missing") {
  GgufBuilder b;
  b.info("w", kTypeF32, {1}, 0);
  std::string s = b.build();
  while (s.size() % 32 == 0) s.pop_back();  // file ends inside the padding before the data
  auto e = parse_error<FormatError>(s);
  CHECK(e.field() == "w");
  CHECK(contains(e.reason(), "runs past the end of the file"));
}

TEST_CASE("gguf: open names a missing file") {
  auto e = expect_error<IoError>([] { GgufFile::open("/nonexistent/model.gguf"); });
  CHECK(e.file() == "/nonexistent/model.gguf");
}

TEST_CASE("gguf: ggml type names and block layouts") {
  CHECK(ggml_type_name(GgmlType::Q4_K) == "Q4_K");
  CHECK(ggml_type_name(GgmlType::BF16) == "BF16");
  CHECK(ggml_type_name(GgmlType(99)) == "unknown ggml type");
  CHECK(ggml_block_elems(GgmlType::F32) == 1);
  CHECK(ggml_block_bytes(GgmlType::BF16) == 2);
  CHECK(ggml_block_elems(GgmlType::Q8_0) == 32);
  CHECK(ggml_block_bytes(GgmlType::Q8_0) == 34);
  CHECK(ggml_block_bytes(GgmlType::Q4_0) == 18);
  CHECK(ggml_block_bytes(GgmlType::Q4_1) == 20);
  CHECK(ggml_block_bytes(GgmlType::Q5_0) == 22);
  CHECK(ggml_block_bytes(GgmlType::Q5_1) == 24);
  CHECK(ggml_block_elems(GgmlType::Q2_K) == 256);
  CHECK(ggml_block_bytes(GgmlType::Q2_K) == 84);
  CHECK(ggml_block_bytes(GgmlType::Q3_K) == 110);
  CHECK(ggml_block_bytes(GgmlType::Q4_K) == 144);
  CHECK(ggml_block_bytes(GgmlType::Q5_K) == 176);
  CHECK(ggml_block_bytes(GgmlType::Q6_K) == 210);
  auto e = expect_error<UnsupportedError>([] { ggml_block_bytes(GgmlType::IQ2_XXS); });
  CHECK(e.field() == "IQ2_XXS");
  expect_error<UnsupportedError>([] { ggml_block_elems(GgmlType(99)); });
}

TEST_CASE("gguf: the real SmolLM2-135M-Instruct file") {
  const auto path = shared_file("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
  auto f = GgufFile::open(path);
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  CHECK(f.tensors().size() == 272);  // embedding + 30 layers x 9 + output norm (tied: no output.weight)
  CHECK(f.get_string("general.architecture") == "llama");
  CHECK(f.get_uint("llama.block_count") == 30);
  CHECK(f.get_uint("llama.embedding_length") == 576);
  CHECK(f.get_uint("llama.attention.head_count") == 9);
  CHECK(f.get_uint("llama.attention.head_count_kv") == 3);
  CHECK(f.get_float("llama.rope.freq_base") == 100000.0);
  CHECK(f.get_string("tokenizer.ggml.model") == "gpt2");
  CHECK(f.get_string("tokenizer.ggml.pre") == "smollm");
  CHECK(f.get_string_array("tokenizer.ggml.tokens").size() == 49152);
  CHECK(f.get_string_array("tokenizer.ggml.merges").size() == 48900);
  CHECK(f.get_int_array("tokenizer.ggml.token_type").size() == 49152);
  CHECK(contains(f.get_string("tokenizer.chat_template"), "<|im_start|>"));
  CHECK(f.tensor("output.weight") == nullptr);

  const GgufTensor* emb = f.tensor("token_embd.weight");
  REQUIRE(emb);
  CHECK(emb->type == GgmlType::Q8_0);
  CHECK(emb->shape() == std::vector<int64_t>{49152, 576});
  CHECK(emb->nbytes == 49152 * 576 / 32 * 34);
  const GgufTensor* q = f.tensor("blk.0.attn_q.weight");
  REQUIRE(q);
  CHECK(q->type == GgmlType::Q4_1);
  CHECK(q->ne == std::vector<int64_t>{576, 576});
  const GgufTensor* k = f.tensor("blk.0.attn_k.weight");
  REQUIRE(k);
  CHECK(k->shape() == std::vector<int64_t>{192, 576});
  for (const char* norm : {"blk.0.attn_norm.weight", "blk.29.ffn_norm.weight", "output_norm.weight"}) {
    const GgufTensor* t = f.tensor(norm);
    REQUIRE(t);
    CHECK(t->type == GgmlType::F32);
    CHECK(t->ne == std::vector<int64_t>{576});
  }
  // The file ends with the last tensor's data.
  uint64_t end = 0;
  for (auto& t : f.tensors()) end = std::max<uint64_t>(end, f.data_offset() + t.offset + t.nbytes);
  CHECK(end == f.bytes().size());
  CHECK(f.keep_alive() != nullptr);
}
