#pragma once
// AnyTokenizer: one value type for "the tokenizer of this model", whatever its kind — a Hugging
// Face tokenizer.json (tok::Tokenizer), a llama2.c tok512.bin (tok::Llama2cTokenizer), or any
// other type with the same members (tests use a byte tokenizer). Front ends such as the eval
// harness are written once against it.
//
//   auto tok = fathom::tok::load_tokenizer_for("/path/stories260K.bin");   // finds tok512.bin
//   auto ids = tok.encode("Once upon a time", /*add_special=*/true);
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/tokenizer/chat.hpp"
#include "fathom/tokenizer/gguf_tokenizer.hpp"
#include "fathom/tokenizer/llama2c_tokenizer.hpp"
#include "fathom/tokenizer/tokenizer.hpp"

namespace fathom::tok {

class AnyTokenizer {
 public:
  AnyTokenizer() = default;

  // Wraps any tokenizer T with encode(text, add_special), decode(ids, skip_special), bos_id(),
  // eos_ids(), vocab_size(); has_chat_template()/apply_chat_template(msgs, gen) when it has them.
  template <class T, class = std::enable_if_t<!std::is_same_v<std::decay_t<T>, AnyTokenizer>>>
  explicit AnyTokenizer(T tok, std::string kind = "custom")
      : impl_(std::make_shared<Model<std::decay_t<T>>>(std::move(tok))), kind_(std::move(kind)) {}

  bool valid() const { return impl_ != nullptr; }
  const std::string& kind() const { return kind_; }  // "hf", "gguf", "llama2c", "custom"

  std::vector<int32_t> encode(std::string_view text, bool add_special = true) const {
    return get().encode(text, add_special);
  }
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const {
    return get().decode(ids, skip_special);
  }
  int32_t bos_id() const { return get().bos_id(); }  // -1: none
  std::vector<int32_t> eos_ids() const { return get().eos_ids(); }
  size_t vocab_size() const { return get().vocab_size(); }
  bool has_chat_template() const { return get().has_chat_template(); }
  // The prompt text (special tokens as text; encode it with add_special = false).
  std::string apply_chat_template(const std::vector<ChatMessage>& msgs,
                                  bool add_generation_prompt = true) const {
    if (!has_chat_template())
      throw UsageError("", "chat_template", "this tokenizer has no chat template");
    return get().apply_chat_template(msgs, add_generation_prompt);
  }
  // What apply_chat_template renders with: the model's own template (its source), a built-in
  // format ("built-in chatml format"), or "" when neither — for programs to say which is used.
  std::string chat_template_source() const { return get().chat_template_source(); }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual std::vector<int32_t> encode(std::string_view, bool) const = 0;
    virtual std::string decode(const std::vector<int32_t>&, bool) const = 0;
    virtual int32_t bos_id() const = 0;
    virtual std::vector<int32_t> eos_ids() const = 0;
    virtual size_t vocab_size() const = 0;
    virtual bool has_chat_template() const = 0;
    virtual std::string apply_chat_template(const std::vector<ChatMessage>&, bool) const = 0;
    virtual std::string chat_template_source() const = 0;
  };
  template <class T>
  struct Model final : Concept {
    explicit Model(T t) : tok(std::move(t)) {}
    std::vector<int32_t> encode(std::string_view s, bool special) const override {
      auto ids = tok.encode(std::string(s), special);
      return std::vector<int32_t>(ids.begin(), ids.end());
    }
    std::string decode(const std::vector<int32_t>& ids, bool skip) const override {
      return tok.decode(ids, skip);  // a vector converts to the span the real tokenizers take
    }
    int32_t bos_id() const override {
      const auto b = tok.bos_id();
      if constexpr (requires { b.has_value(); }) return b ? int32_t(*b) : -1;  // optional id
      else return int32_t(b);
    }
    std::vector<int32_t> eos_ids() const override {
      auto e = tok.eos_ids();
      return std::vector<int32_t>(e.begin(), e.end());
    }
    size_t vocab_size() const override { return size_t(tok.vocab_size()); }
    bool has_chat_template() const override {
      if constexpr (requires { tok.has_chat_template(); }) return tok.has_chat_template();
      else if constexpr (requires { tok.chat_format(); }) return tok.chat_format() != ChatFormat::Auto;
      else return false;
    }
    std::string apply_chat_template(const std::vector<ChatMessage>& m, bool gen) const override {
      if constexpr (requires { tok.apply_chat_template(m, gen); })
        return tok.apply_chat_template(m, gen);
      else
        throw UsageError("", "chat_template", "this tokenizer has no chat template");
    }
    std::string chat_template_source() const override {
      if constexpr (requires { tok.chat_template_source(); }) return tok.chat_template_source();
      else return has_chat_template() ? "the tokenizer's chat format" : "";
    }
    T tok;
  };

  const Concept& get() const {
    if (!impl_) throw UsageError("", "tokenizer", "empty AnyTokenizer");
    return *impl_;
  }
  std::shared_ptr<const Concept> impl_;
  std::string kind_ = "none";
};

namespace detail {
// vocab_size from a llama2.c checkpoint header (7 int32: dim, hidden, layers, heads, kv heads,
// vocab — negative when the classifier is not shared — and seq_len).
inline size_t llama2c_vocab(const std::filesystem::path& bin) {
  std::ifstream f(bin, std::ios::binary);
  int32_t h[7];
  if (!f.read(reinterpret_cast<char*>(h), sizeof h))
    throw IoError(bin.string(), "header", "cannot read the llama2.c header");
  const int64_t v = h[5] < 0 ? -int64_t(h[5]) : int64_t(h[5]);
  if (v <= 0) throw FormatError(bin.string(), "vocab_size", "must be positive");
  return size_t(v);
}
}  // namespace detail

// Loads a tokenizer file or folder: a folder or tokenizer.json (Hugging Face), a .gguf file (the
// tokenizer in its metadata, tok::tokenizer_from_gguf) or a llama2.c tokenizer .bin (needs `vocab`,
// the model's vocabulary size).
inline AnyTokenizer load_tokenizer(const std::filesystem::path& path, size_t vocab = 0) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw IoError(path.string(), "", "tokenizer not found");
  if (fs::is_directory(path)) return AnyTokenizer(Tokenizer::from_dir(path), "hf");
  if (path.extension() == ".gguf") return AnyTokenizer(tokenizer_from_gguf(path), "gguf");  // from its metadata
  if (path.extension() == ".json") {
    const auto cfg = path.parent_path() / "tokenizer_config.json";
    return AnyTokenizer(Tokenizer::from_file(path, fs::exists(cfg) ? cfg : fs::path{}), "hf");
  }
  if (vocab == 0)
    throw UsageError(path.string(), "vocab", "a llama2.c tokenizer needs the model's vocabulary size");
  return AnyTokenizer(Llama2cTokenizer::load(path, vocab), "llama2c");
}

// The tokenizer of a model: `explicit_path` when given, else tok512.bin beside a llama2.c .bin
// checkpoint, the metadata of a .gguf model, else tokenizer.json in a Hugging Face model folder
// (or beside a .safetensors).
inline AnyTokenizer load_tokenizer_for(const std::filesystem::path& model,
                                       const std::filesystem::path& explicit_path = {}) {
  namespace fs = std::filesystem;
  const bool llama2c = fs::is_regular_file(model) && model.extension() == ".bin";
  const size_t vocab = llama2c ? detail::llama2c_vocab(model) : 0;
  if (!explicit_path.empty()) return load_tokenizer(explicit_path, vocab);
  if (fs::is_regular_file(model) && model.extension() == ".gguf") return load_tokenizer(model);
  if (llama2c) {
    const auto t = model.parent_path() / "tok512.bin";
    if (!fs::exists(t))
      throw IoError(t.string(), "", "no tokenizer beside the llama2.c checkpoint (give --tokenizer)");
    return load_tokenizer(t, vocab);
  }
  const auto dir = fs::is_directory(model) ? model : model.parent_path();
  if (!fs::exists(dir / "tokenizer.json"))
    throw IoError((dir / "tokenizer.json").string(), "", "no tokenizer in the model folder (give --tokenizer)");
  return load_tokenizer(dir, 0);
}

}  // namespace fathom::tok
