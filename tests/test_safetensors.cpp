// safetensors reader/writer: round trips, sharded checkpoints, and one test per malformed input.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "fathom/io/safetensors.hpp"
#include "io_test_util.hpp"

using namespace fathom;
using namespace fathom::io;
using fathom::test::contains;
using fathom::test::expect_error;
using fathom::test::TempDir;
using fathom::test::write_file;

namespace {

template <class T>
std::vector<std::byte> bytes_of(const std::vector<T>& v) {
  std::vector<std::byte> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

TensorView view_of(const std::string& name, DType dt, std::vector<int64_t> shape, const std::vector<std::byte>& b) {
  return TensorView{name, dt, std::move(shape), b.data(), b.size(), {}};
}

// A raw safetensors file: 8-byte length (or `declared_len` when given), header text, data.
std::string raw_file(const std::string& header, const std::string& data = {}, int64_t declared_len = -1) {
  uint64_t n = declared_len >= 0 ? uint64_t(declared_len) : header.size();
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return s + header + data;
}

// One F32 tensor "t" with the given header fields, 16 data bytes.
std::string one_tensor(const std::string& fields) {
  return raw_file("{\"t\":{" + fields + "}}", std::string(16, '\0'));
}

template <class E>
E load_error(const TempDir& d, const std::string& contents) {
  write_file(d / "x.safetensors", contents);
  return expect_error<E>([&] { load_safetensors(d / "x.safetensors"); });
}

}  // namespace

TEST_CASE("safetensors: writer round trip keeps dtypes, shapes, values, order and metadata") {
  TempDir d;
  std::vector<float> f{1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, 7.0f};
  std::vector<uint16_t> bf{f32_to_bf16(1.0f), f32_to_bf16(-0.5f), f32_to_bf16(3.25f)};
  std::vector<uint16_t> hf{0x3c00, 0xc000, 0x3555};  // 1, -2, ~0.333 in f16
  std::vector<int64_t> i64{-1, 1LL << 40, 7};
  std::vector<int32_t> i32{5, -6};
  std::vector<uint8_t> u8{1, 2, 3};
  std::vector<uint8_t> bl{1, 0};
  auto bf_ = bytes_of(f), bbf = bytes_of(bf), bhf = bytes_of(hf), bi64 = bytes_of(i64), bi32 = bytes_of(i32),
       bu8 = bytes_of(u8), bbl = bytes_of(bl);
  std::vector<TensorView> ts{view_of("z.f32", DType::F32, {2, 3}, bf_), view_of("a.bf16", DType::BF16, {3}, bbf),
                             view_of("f16", DType::F16, {1, 3}, bhf), view_of("i64", DType::I64, {3}, bi64),
                             view_of("i32", DType::I32, {2}, bi32), view_of("u8", DType::U8, {3}, bu8),
                             view_of("bool", DType::BOOL, {2}, bbl), view_of("scalar", DType::F32, {}, bytes_of(std::vector<float>{}))};
  ts.back().shape = {0};
  save_safetensors(d / "m.safetensors", ts, {{"format", "pt"}, {"note", "é"}});

  auto raw = fathom::test::read_file(d / "m.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  CHECK(n % 8 == 0);
  // Tensors are written in the order given, not sorted by name (the empty one has no bytes).
  auto h = read_safetensors_header(d / "m.safetensors");
  REQUIRE(h.tensors.size() == ts.size());
  for (size_t i = 0; i + 1 < ts.size(); ++i) CHECK(h.tensors[i].name == ts[i].name);
  CHECK(h.tensors[1].begin == 24);
  CHECK(h.metadata.at("format") == "pt");
  CHECK(h.metadata.at("note") == "é");

  auto store = load_safetensors(d / "m.safetensors");
  CHECK(store.size() == ts.size());
  const auto& tf = store.get("z.f32", {2, 3});
  CHECK(tf.file == (d / "m.safetensors").string());
  CHECK(to_f32(tf) == f);
  CHECK(to_f32(store.get("a.bf16")) == std::vector<float>{1.0f, -0.5f, 3.25f});
  auto h16 = to_f32(store.get("f16", {1, 3}));
  CHECK(h16[0] == 1.0f);
  CHECK(h16[1] == -2.0f);
  CHECK(h16[2] == doctest::Approx(1.0 / 3).epsilon(1e-3));
  CHECK(to_i64(store.get("i64")) == i64);
  CHECK(to_i64(store.get("i32")) == std::vector<int64_t>{5, -6});
  CHECK(store.get("u8").as<uint8_t>()[2] == 3);
  CHECK(store.get("bool").dtype == DType::BOOL);
  CHECK(store.get("scalar").numel() == 0);
  CHECK(store.get("scalar").nbytes == 0);
  // Zero copy: the view points into the mapped file, not at the source buffer.
  CHECK(tf.data != bf_.data());
  CHECK(reinterpret_cast<uintptr_t>(tf.data) % 4 == 0);
  expect_error<UnsupportedError>([&] { to_f32(store.get("i64")); });
  expect_error<UnsupportedError>([&] { to_i64(store.get("z.f32")); });
}

TEST_CASE("safetensors: writer rejects inconsistent tensors") {
  TempDir d;
  auto b = bytes_of(std::vector<float>{1, 2, 3});
  auto e = expect_error<UsageError>([&] {
    save_safetensors(d / "m.safetensors", {view_of("w", DType::F32, {2, 2}, b)});
  });
  CHECK(e.field() == "w");
  expect_error<UsageError>([&] {
    save_safetensors(d / "m.safetensors", {view_of("w", DType::F32, {3}, b), view_of("w", DType::F32, {3}, b)});
  });
  expect_error<IoError>([&] { save_safetensors(d / "no/such/dir/m.safetensors", {}); });
}

TEST_CASE("safetensors: a folder with model.safetensors, and an empty header") {
  TempDir d;
  auto b = bytes_of(std::vector<float>{4, 5});
  save_safetensors(d / "model.safetensors", {view_of("w", DType::F32, {2}, b)});
  auto store = load_safetensors(d.path);
  CHECK(to_f32(store.get("w", {2})) == std::vector<float>{4, 5});
  CHECK(store.origin() == d.path.string());

  write_file(d / "empty.safetensors", raw_file("{}"));
  CHECK(load_safetensors(d / "empty.safetensors").size() == 0);
}

TEST_CASE("safetensors: misaligned tensors are copied to aligned storage") {
  TempDir d;
  float v = 2.5f;
  std::string data(1, '\x07');
  data.append(reinterpret_cast<const char*>(&v), 4);
  write_file(d / "m.safetensors",
             raw_file(R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"f":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})",
                      data));
  auto store = load_safetensors(d / "m.safetensors");
  const auto& f = store.get("f");
  CHECK(reinterpret_cast<uintptr_t>(f.data) % 4 == 0);
  CHECK(f.as<float>()[0] == 2.5f);
  CHECK(store.get("b").as<uint8_t>()[0] == 7);
}

TEST_CASE("safetensors: sharded checkpoint through its index (folder or index file)") {
  TempDir d;
  auto a = bytes_of(std::vector<float>{1, 2}), b = bytes_of(std::vector<float>{3}), c = bytes_of(std::vector<float>{4, 5, 6});
  save_safetensors(d / "model-00001-of-00002.safetensors", {view_of("a", DType::F32, {2}, a), view_of("b", DType::F32, {1}, b)});
  save_safetensors(d / "model-00002-of-00002.safetensors", {view_of("c", DType::F32, {3}, c)});
  write_file(d / "model.safetensors.index.json",
             R"({"metadata":{"total_size":24},"weight_map":{"a":"model-00001-of-00002.safetensors",
                 "b":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}})");
  for (auto p : {d.path, d / "model.safetensors.index.json"}) {
    auto store = load_safetensors(p);
    CHECK(store.size() == 3);
    CHECK(to_f32(store.get("c", {3})) == std::vector<float>{4, 5, 6});
    CHECK(to_f32(store.get("a")) == std::vector<float>{1, 2});
    CHECK(contains(store.get("c").file, "model-00002-of-00002"));
  }
}

TEST_CASE("safetensors bad input: missing file") {
  TempDir d;
  auto e = expect_error<IoError>([&] { load_safetensors(d / "nope.safetensors"); });
  CHECK(contains(e.reason(), "No such file"));
}

TEST_CASE("safetensors bad input: folder without model.safetensors or index") {
  TempDir d;
  auto e = expect_error<IoError>([&] { load_safetensors(d.path); });
  CHECK(contains(e.reason(), "model.safetensors.index.json"));
}

TEST_CASE("safetensors bad input: file shorter than 8 bytes") {
  TempDir d;
  auto e = load_error<FormatError>(d, "abc");
  CHECK(e.file() == (d / "x.safetensors").string());
  CHECK(e.field() == "header length");
  CHECK(contains(e.reason(), "3 bytes"));
  CHECK(contains(load_error<FormatError>(d, "").reason(), "0 bytes"));  // empty file maps fine
}

TEST_CASE("safetensors bad input: header length beyond the file") {
  TempDir d;
  auto e = load_error<FormatError>(d, raw_file("{}", "", 500));
  CHECK(e.field() == "header length");
  CHECK(contains(e.reason(), "runs past the end"));
}

TEST_CASE("safetensors bad input: absurd header length") {
  TempDir d;
  auto e = load_error<FormatError>(d, raw_file("{}", "", int64_t(1) << 40));
  CHECK(e.field() == "header length");
  CHECK(contains(e.reason(), "absurd"));
}

TEST_CASE("safetensors bad input: header is not JSON") {
  TempDir d;
  auto e = load_error<FormatError>(d, raw_file("{\"t\": [1,}"));
  CHECK(contains(e.reason(), "invalid JSON at byte 9"));
}

TEST_CASE("safetensors bad input: header is not an object") {
  TempDir d;
  auto e = load_error<FormatError>(d, raw_file("[1, 2]"));
  CHECK(e.field() == "header");
  CHECK(contains(e.reason(), "got array"));
}

TEST_CASE("safetensors bad input: header is not UTF-8") {
  TempDir d;
  auto e = load_error<FormatError>(d, raw_file("{\"t\xff\": 1}"));
  CHECK(e.reason() == "invalid UTF-8 at byte 3");
}

TEST_CASE("safetensors bad input: unknown dtype names tensor and dtype") {
  TempDir d;
  auto e = load_error<UnsupportedError>(d, one_tensor(R"("dtype":"F64","shape":[2],"data_offsets":[0,16])"));
  CHECK(e.field() == "t");
  CHECK(contains(e.reason(), "dtype F64"));
  auto e2 = load_error<FormatError>(d, one_tensor(R"("dtype":7,"shape":[2],"data_offsets":[0,16])"));
  CHECK(contains(e2.reason(), "dtype: expected string"));
}

TEST_CASE("safetensors bad input: shape not a list of non-negative integers") {
  TempDir d;
  for (auto shape : {R"("x")", R"([2,-2])", R"([2.5])", R"([null])", R"({"a":1})"}) {
    auto e = load_error<FormatError>(d, one_tensor(std::string(R"("dtype":"F32","data_offsets":[0,16],"shape":)") + shape));
    CHECK(e.field() == "t");
    CHECK(contains(e.reason(), "shape"));
  }
  auto e = load_error<FormatError>(d, one_tensor(R"("dtype":"F32","data_offsets":[0,16])"));
  CHECK(e.reason() == "shape missing");
  // Element count overflow must not wrap around to a small byte count.
  auto big = load_error<FormatError>(
      d, one_tensor(R"("dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,16])"));
  CHECK(contains(big.reason(), "overflow"));
}

TEST_CASE("safetensors bad input: data_offsets malformed or out of range") {
  TempDir d;
  for (auto off : {R"([0])", R"([0,16,32])", R"("0,16")", R"([-1,15])", R"([0,"16"])"}) {
    auto e = load_error<FormatError>(d, one_tensor(std::string(R"("dtype":"F32","shape":[4],"data_offsets":)") + off));
    CHECK(e.field() == "t");
    CHECK(contains(e.reason(), "data_offsets"));
  }
  auto past = load_error<FormatError>(d, one_tensor(R"("dtype":"F32","shape":[5],"data_offsets":[0,20])"));
  CHECK(contains(past.reason(), "run past the end of the data section (16 bytes)"));
  auto rev = load_error<FormatError>(d, one_tensor(R"("dtype":"F32","shape":[0],"data_offsets":[8,4])"));
  CHECK(contains(rev.reason(), "begin after end"));
}

TEST_CASE("safetensors bad input: byte count differs from shape x dtype size") {
  TempDir d;
  auto e = load_error<FormatError>(d, one_tensor(R"("dtype":"BF16","shape":[2,2],"data_offsets":[0,16])"));
  CHECK(e.field() == "t");
  CHECK(contains(e.reason(), "byte count 16 does not match shape [2, 2]"));
}

TEST_CASE("safetensors bad input: overlapping tensors") {
  TempDir d;
  write_file(d / "x.safetensors",
             raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                      std::string(16, '\0')));
  auto e = expect_error<FormatError>([&] { load_safetensors(d / "x.safetensors"); });
  CHECK(e.field() == "b");
  CHECK(contains(e.reason(), "overlap tensor a"));
}

TEST_CASE("safetensors bad input: __metadata__ not a map of strings") {
  TempDir d;
  auto e = load_error<FormatError>(d, raw_file(R"({"__metadata__":{"format":"pt","n":3}})"));
  CHECK(e.field() == "__metadata__.n");
  CHECK(contains(e.reason(), "expected string, got integer"));
  auto e2 = load_error<FormatError>(d, raw_file(R"({"__metadata__":["pt"]})"));
  CHECK(e2.field() == "__metadata__");
}

TEST_CASE("safetensors bad input: tensor entry not an object, or missing data_offsets") {
  TempDir d;
  CHECK(contains(load_error<FormatError>(d, raw_file(R"({"t":[1]})")).reason(), "expected an object"));
  CHECK(load_error<FormatError>(d, one_tensor(R"("dtype":"F32","shape":[4])")).reason() == "data_offsets missing");
}

TEST_CASE("safetensors bad input: shard listed in the index is missing") {
  TempDir d;
  write_file(d / "model.safetensors.index.json", R"({"weight_map":{"w":"model-00001-of-00001.safetensors"}})");
  auto e = expect_error<IoError>([&] { load_safetensors(d.path); });
  CHECK(contains(e.file(), "model-00001-of-00001.safetensors"));
  CHECK(contains(e.reason(), "for w"));
}

TEST_CASE("safetensors bad input: index names a tensor its shard lacks") {
  TempDir d;
  auto b = bytes_of(std::vector<float>{1});
  save_safetensors(d / "s1.safetensors", {view_of("w", DType::F32, {1}, b)});
  write_file(d / "model.safetensors.index.json", R"({"weight_map":{"w":"s1.safetensors","v":"s1.safetensors"}})");
  auto e = expect_error<FormatError>([&] { load_safetensors(d.path); });
  CHECK(e.field() == "v");
  CHECK(contains(e.file(), "s1.safetensors"));
  CHECK(contains(e.reason(), "not in this shard"));
}

TEST_CASE("safetensors bad input: malformed index and duplicated tensors across shards") {
  TempDir d;
  auto b = bytes_of(std::vector<float>{1});
  save_safetensors(d / "s1.safetensors", {view_of("w", DType::F32, {1}, b)});
  save_safetensors(d / "s2.safetensors", {view_of("w", DType::F32, {1}, b)});
  write_file(d / "model.safetensors.index.json", R"({"weight_map":{"w":"s1.safetensors","x":"s2.safetensors"}})");
  auto e = expect_error<FormatError>([&] { load_safetensors(d.path); });
  CHECK(e.field() == "w");
  CHECK(contains(e.reason(), "also present"));
  write_file(d / "model.safetensors.index.json", R"({"weight_map":{"w":3}})");
  CHECK(expect_error<FormatError>([&] { load_safetensors(d.path); }).field() == "weight_map.w");
  write_file(d / "model.safetensors.index.json", R"({"metadata":{}})");
  CHECK(expect_error<FormatError>([&] { load_safetensors(d.path); }).field() == "weight_map");
}

TEST_CASE("tensor store: missing or wrongly shaped tensor names it") {
  TempDir d;
  auto b = bytes_of(std::vector<float>{1, 2});
  save_safetensors(d / "m.safetensors", {view_of("w", DType::F32, {2}, b)});
  auto store = load_safetensors(d / "m.safetensors");
  auto e = expect_error<FormatError>([&] { store.get("v"); });
  CHECK(e.field() == "v");
  CHECK(e.reason() == "missing tensor");
  auto e2 = expect_error<FormatError>([&] { store.get("w", {1, 2}); });
  CHECK(e2.field() == "w");
  CHECK(contains(e2.reason(), "shape [2], expected [1, 2]"));
}

TEST_CASE("safetensors: a header number that overflows is a FormatError, not a crash") {
  const std::string header = R"({"a":{"dtype":"F32","shape":[175E55555555555555555555],"data_offsets":[0,4]}})";
  std::vector<std::byte> bytes(8 + header.size());
  uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  CHECK_THROWS_AS(fathom::io::parse_safetensors_header(bytes, "overflow.safetensors"), fathom::FormatError);
}
