// Reliability: hostile headers that claim huge sizes fail with a typed error before anything of
// that size is allocated (safetensors, GGUF, llama2.c checkpoint and tokenizer, tuned lens), the
// --ids parser, the in-memory loaders the fuzz targets use, and checkpoint sets that survive a
// kill at any moment (io/staged_files.hpp) and a full disk or read-only folder.
//
// A "terabytes" case would end in std::bad_alloc (or, under AddressSanitizer, an abort for an
// allocation above its 1 TiB limit) if the reader allocated what the header claims: expecting the
// typed error is the test that it did not.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fathom/core/id_list.hpp"
#include "fathom/io/gguf.hpp"
#include "fathom/io/llama2c.hpp"
#include "fathom/io/safetensors.hpp"
#include "fathom/io/staged_files.hpp"
#include "fathom/lens/tuned_lens.hpp"
#include "fathom/tokenizer/llama2c_tokenizer.hpp"
#include "gguf_test_writer.hpp"
#include "io_test_util.hpp"

using namespace fathom;
using fathom::test::contains;
using fathom::test::expect_error;
using fathom::test::TempDir;
namespace fs = std::filesystem;

namespace {
constexpr uint64_t kTiB = uint64_t(1) << 40;

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// A safetensors file from its header JSON and data bytes.
std::string safetensors(const nlohmann::json& header, const std::string& data) {
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::string s(8, '\0');
  const uint64_t n = h.size();
  std::memcpy(s.data(), &n, 8);
  return s + h + data;
}

std::string floats(size_t n, float v = 0.5f) {
  std::string s(n * 4, '\0');
  for (size_t i = 0; i < n; ++i) std::memcpy(s.data() + 4 * i, &v, 4);
  return s;
}

// True when this process may not write into `dir` (root ignores permission bits).
bool cannot_write(const fs::path& dir) { return ::access(dir.c_str(), W_OK) != 0; }
}  // namespace

// ---- resource limits ----------------------------------------------------------------------------

TEST_CASE("resource limits: a safetensors header claiming terabytes fails before allocating") {
  // A header length of 1 TiB.
  std::string s(16, ' ');
  const uint64_t n = kTiB;
  std::memcpy(s.data(), &n, 8);
  auto e = expect_error<FormatError>([&] { io::parse_safetensors_header(bytes_of(s), "huge.safetensors"); });
  CHECK(e.field() == "header length");
  // A tensor of 2^20 x 2^20 x 2^10 F32 (4 PiB) whose offsets claim it.
  const uint64_t big = (uint64_t(1) << 50) * 4;
  s = safetensors({{"w", {{"dtype", "F32"}, {"shape", {1 << 20, 1 << 20, 1 << 10}}, {"data_offsets", {0, big}}}}}, "");
  e = expect_error<FormatError>([&] { io::parse_safetensors_header(bytes_of(s), "huge.safetensors"); });
  CHECK(e.field() == "w");
}

TEST_CASE("resource limits: GGUF counts and tensors claiming terabytes fail before allocating") {
  using fathom::test::GgufBuilder;
  // 2^40 metadata entries and 2^40 tensor infos in a tiny file.
  auto e = expect_error<FormatError>([&] {
    io::GgufFile::parse(bytes_of(GgufBuilder{}.build(0, int64_t(kTiB))), "huge.gguf");
  });
  CHECK(e.field() == "kv_count");
  e = expect_error<FormatError>([&] {
    io::GgufFile::parse(bytes_of(GgufBuilder{}.build(int64_t(kTiB), 0)), "huge.gguf");
  });
  CHECK(e.field() == "tensor_count");
  // An array (a tokenizer's token list) of 2^40 strings.
  GgufBuilder g;
  g.kv("tokenizer.ggml.tokens", 9, GgufBuilder::array_value(8, kTiB, GgufBuilder::str_value("a")));
  e = expect_error<FormatError>([&] { io::GgufFile::parse(bytes_of(g.build()), "huge.gguf"); });
  CHECK(e.field() == "tokenizer.ggml.tokens");
  // A 4 TiB F32 tensor (2^20 x 2^20) whose data is not in the file.
  GgufBuilder t;
  t.tensor("w", 0, {1 << 20, 1 << 20}, floats(8));
  e = expect_error<FormatError>([&] { io::GgufFile::parse(bytes_of(t.build()), "huge.gguf"); });
  CHECK(e.field() == "w");
}

TEST_CASE("resource limits: a llama2.c header claiming terabytes fails before allocating") {
  // dim 65536, hidden 2^20, 1024 layers: about 4 PiB of weights, in a 28-byte file + a little.
  const int32_t h[7] = {1 << 16, 1 << 20, 1 << 10, 1 << 8, 1 << 8, 1 << 20, 1 << 20};
  std::string s(reinterpret_cast<const char*>(h), 28);
  s += floats(64);
  auto e = expect_error<FormatError>([&] { io::parse_llama2c(bytes_of(s), "huge.bin"); });
  CHECK(contains(e.field(), "token_embedding"));
  CHECK(contains(e.reason(), "file ends at byte"));
}

TEST_CASE("resource limits: a llama2.c tokenizer for a 2^31-token vocabulary is not reserved up front") {
  // The vocabulary size comes from the model's header; a file of 3 tokens cannot hold 2^31 - 1.
  std::string s(4, '\0');
  const int32_t max_len = 8;
  std::memcpy(s.data(), &max_len, 4);
  for (const char* piece : {"<unk>", "<s>", "</s>"}) {
    const float score = 0;
    const int32_t len = int32_t(std::strlen(piece));
    s.append(reinterpret_cast<const char*>(&score), 4).append(reinterpret_cast<const char*>(&len), 4).append(piece);
  }
  auto e = expect_error<TokenizerError>([&] {
    tok::Llama2cTokenizer::from_bytes(bytes_of(s), size_t(INT32_MAX), "huge/tok.bin");
  });
  CHECK(e.field() == "token 3");
  CHECK(tok::Llama2cTokenizer::from_bytes(bytes_of(s), 3, "tok.bin").vocab_size() == 3);
}

TEST_CASE("resource limits: a tuned-lens config claiming a huge d_model fails before allocating") {
  // d_model 2^20 and 2^20 layers would be 4 EiB of translators; params.safetensors has one 2x2.
  const std::string params = safetensors(
      {{"0.weight", {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {0, 16}}}},
       {"0.bias", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {16, 24}}}}},
      floats(6));
  auto e = expect_error<FormatError>([&] {
    lens::TunedLens::from_bytes(R"({"d_model": 1048576, "num_hidden_layers": 1048576})", bytes_of(params),
                                "lens/config.json", "lens/params.safetensors");
  });
  CHECK(e.field() == "0.weight");
  CHECK(contains(e.reason(), "expected [1048576, 1048576]"));
  // The same bytes with the right shape load, from memory.
  auto lens = lens::TunedLens::from_bytes(R"({"d_model": 2, "num_hidden_layers": 1})", bytes_of(params));
  CHECK(lens.n_layers() == 1);
  CHECK(lens.hidden() == 2);
  CHECK(lens.weight(0)[3] == 0.5f);
  CHECK(lens.bias(0)[1] == 0.5f);
  // More layers than tensors: the first missing one is named.
  e = expect_error<FormatError>([&] {
    lens::TunedLens::from_bytes(R"({"d_model": 2, "num_hidden_layers": 1000000000000})", bytes_of(params));
  });
  CHECK(e.field() == "1.weight");
}

// ---- --ids ------------------------------------------------------------------------------------

TEST_CASE("--ids: comma-separated int32 ids; anything else names the item (found by fuzzing)") {
  CHECK(parse_id_list("1,403,407") == std::vector<int32_t>{1, 403, 407});
  CHECK(parse_id_list(" 5,-1,+2,") == std::vector<int32_t>{5, -1, 2});
  CHECK(parse_id_list("").empty());
  CHECK(parse_id_list("2147483647,-2147483648") == std::vector<int32_t>{INT32_MAX, INT32_MIN});
  // Beyond int32 an id was cut to its low 32 bits: 4294967297 became 1.
  auto e = expect_error<UsageError>([] { parse_id_list("1,4294967297"); });
  CHECK(e.field() == "--ids");
  CHECK(contains(e.reason(), "'4294967297' is outside the range"));
  CHECK_THROWS_AS(parse_id_list("99999999999999999999999"), UsageError);
  CHECK_THROWS_AS(parse_id_list("1,,2"), UsageError);
  CHECK_THROWS_AS(parse_id_list("1 "), UsageError);
  CHECK_THROWS_AS(parse_id_list("0x10"), UsageError);
  CHECK_THROWS_AS(parse_id_list(std::string("1\0002", 3)), UsageError);
}

// ---- checkpoint sets that survive kills -------------------------------------------------------

namespace {
void put(const fs::path& p, const std::string& text) {
  std::ofstream o(p, std::ios::binary);
  o << text;
}
std::string get(const fs::path& p) { return fathom::test::read_file(p); }
}  // namespace

TEST_CASE("staged files: a set is replaced as one; a kill before or after the commit point recovers") {
  TempDir d;
  put(d / "other.txt", "not ours");
  io::commit_files(d.path, [](const fs::path& s) { put(s / "a", "a1"); put(s / "b", "b1"); });
  CHECK(get(d / "a") == "a1");
  CHECK(get(d / "b") == "b1");
  CHECK_FALSE(fs::exists(d / ".staging"));
  CHECK_FALSE(fs::exists(d / ".ready"));

  SUBCASE("killed while writing: the staging folder is dropped, the old set stays") {
    fs::create_directory(d / ".staging");
    put(d / ".staging" / "a", "a2-half");
    io::recover_files(d.path);
    CHECK_FALSE(fs::exists(d / ".staging"));
    CHECK(get(d / "a") == "a1");
  }
  SUBCASE("killed after the commit point, one file moved: recovery moves the rest") {
    fs::create_directory(d / ".ready");
    put(d / ".ready" / "b", "b2");
    put(d / "a", "a2");  // already moved before the kill
    io::recover_files(d.path);
    CHECK(get(d / "a") == "a2");
    CHECK(get(d / "b") == "b2");
    CHECK_FALSE(fs::exists(d / ".ready"));
  }
  SUBCASE("a writer that fails (a full disk) leaves the old set and no staging folder") {
    CHECK_THROWS_AS(io::commit_files(d.path, [](const fs::path& s) {
                      put(s / "a", "a2");
                      throw IoError((s / "b").string(), "", "write failed (disk full?)");
                    }),
                    IoError);
    CHECK(get(d / "a") == "a1");
    CHECK(get(d / "b") == "b1");
    CHECK_FALSE(fs::exists(d / ".staging"));
  }
  CHECK(get(d / "other.txt") == "not ours");
}

TEST_CASE("staged files: a read-only folder is an IoError naming it, the old set stays") {
  TempDir d;
  io::commit_files(d.path, [](const fs::path& s) { put(s / "a", "a1"); });
  fs::permissions(d.path, fs::perms::owner_read | fs::perms::owner_exec);
  if (cannot_write(d.path)) {  // not as root
    auto e = expect_error<IoError>([&] { io::commit_files(d.path, [](const fs::path& s) { put(s / "a", "a2"); }); });
    CHECK(contains(e.file(), ".staging"));
    CHECK(get(d / "a") == "a1");
  }
  fs::permissions(d.path, fs::perms::owner_all);
}

TEST_CASE("tuned lens save to a full disk (/dev/full) is an IoError, not a silently short file") {
  if (!fs::exists("/dev/full")) return;
  lens::TunedLens l(1, 2);
  TempDir d;
  // config.json as a link to /dev/full: every write fails with ENOSPC.
  fs::create_symlink("/dev/full", d / "config.json");
  CHECK_THROWS_AS(l.save(d.path), IoError);
}
