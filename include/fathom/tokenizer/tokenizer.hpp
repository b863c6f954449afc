#pragma once
// fathom::tok::Tokenizer: a Hugging Face tokenizer.json (+ tokenizer_config.json) loader whose
// encode/decode are identical to the reference `tokenizers` library for byte-level BPE
// (Qwen2/2.5/3, Llama-3) and SentencePiece-style BPE (Llama-2, Mistral), plus the families'
// chat formats. See docs/tokenizers.md.
//
// Encode pipeline (the reference's order): repair invalid UTF-8 (U+FFFD per maximal invalid
// subpart) -> split out added tokens matched in the raw text -> per stretch: normalizer ->
// added tokens matched in normalized text -> pre-tokenizer chain -> BPE per piece ->
// post-processor (TemplateProcessing special tokens) when add_special.
//
// A Tokenizer is immutable after loading and cheap to copy (shared state); encode/decode may
// be called from many threads at once.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/core/text_file.hpp"
#include "fathom/tokenizer/chat.hpp"
#include "fathom/tokenizer/chat_template.hpp"
#include "fathom/tokenizer/detail/added_vocab.hpp"
#include "fathom/tokenizer/detail/bpe.hpp"
#include "fathom/tokenizer/detail/decoder.hpp"
#include "fathom/tokenizer/detail/json_reader.hpp"
#include "fathom/tokenizer/detail/json_util.hpp"
#include "fathom/tokenizer/detail/normalizer.hpp"
#include "fathom/tokenizer/detail/pre_tokenizer.hpp"
#include "fathom/tokenizer/detail/utf8.hpp"

namespace fathom::tok {

namespace detail {

inline json parse_json_text(const std::string& text, const std::string& file) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw TokenizerError(file, "", std::string("malformed JSON: ") + e.what());
  }
}

// A special-token field of tokenizer_config.json: "str", {"content": "str"} or null.
inline std::string config_token(const JsonCtx& ctx, const json& cfg, const std::string& key) {
  if (!cfg.contains(key) || cfg[key].is_null()) return {};
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  ctx.fail(key, "expected a string or {\"content\": ...}");
}

struct TemplatePiece {
  bool is_sequence = false;   // $A
  std::vector<int32_t> ids;   // special token ids otherwise
};

struct TokenizerState {
  std::string file;
  std::unique_ptr<Normalizer> normalizer;
  std::vector<std::unique_ptr<PreTokenizer>> pre;
  Bpe model;
  std::vector<AddedToken> added;
  std::unordered_map<int32_t, size_t> added_by_id;
  StringMap added_by_content;
  AddedMatcher raw_matcher, norm_matcher;
  std::unordered_set<int32_t> special_ids;
  std::unordered_set<std::string> special_contents;
  std::vector<TemplatePiece> post;   // empty: no special tokens added
  std::unique_ptr<Decoder> decoder;
  std::optional<int32_t> bos;
  std::vector<int32_t> eos;
  ChatStyle chat;
  // The model's own chat templates by name ("default", "tool_use"...; a single template is
  // "default"), and the special-token variables they see.
  std::vector<std::pair<std::string, ChatTemplate>> templates;
  SpecialTokens special_tokens;
  size_t vocab_size = 0;
};

}  // namespace detail

class Tokenizer {
 public:
  // A folder holding tokenizer.json and (optionally) tokenizer_config.json and chat_template.jinja.
  static Tokenizer from_dir(const std::filesystem::path& dir) {
    const auto cfg = dir / "tokenizer_config.json";
    return from_file(dir / "tokenizer.json", std::filesystem::exists(cfg) ? cfg : std::filesystem::path{});
  }

  // chat_template.jinja beside tokenizer.json, when present, is the chat template (it takes
  // precedence over tokenizer_config.json's chat_template, as in transformers).
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json,
                             const std::filesystem::path& config = {}) {
    const std::string text = read_text_file(tokenizer_json);
    std::string cfg_text;
    if (!config.empty()) cfg_text = read_text_file(config);
    const auto jinja_file = tokenizer_json.parent_path() / "chat_template.jinja";
    std::string tpl;
    if (std::filesystem::exists(jinja_file)) tpl = read_text_file(jinja_file);
    return from_json_text(text, cfg_text, tokenizer_json.string(), config.string(), tpl,
                          tpl.empty() ? std::string() : jinja_file.string());
  }

  // From the contents of the files (config and chat template may be empty); the names are for
  // messages. A non-empty `chat_template` replaces the config's chat_template.
  static Tokenizer from_json_text(const std::string& tokenizer_json, const std::string& config_json = {},
                                  const std::string& tokenizer_name = "tokenizer.json",
                                  const std::string& config_name = "tokenizer_config.json",
                                  const std::string& chat_template = {},
                                  const std::string& chat_template_name = "chat_template.jinja") {
    auto state = std::make_shared<detail::TokenizerState>();
    auto tj = detail::read_tokenizer_json(tokenizer_json, tokenizer_name);
    load(*state, tj, tokenizer_name,
         config_json.empty() ? detail::json::object() : detail::parse_json_text(config_json, config_name),
         config_name, chat_template, chat_template_name);
    Tokenizer t;
    t.s_ = std::move(state);
    return t;
  }

  // Invalid UTF-8 in `text` is first replaced (U+FFFD per maximal invalid subpart), as the
  // reference's Python/Rust front ends require valid text.
  std::vector<int32_t> encode(std::string_view text, bool add_special = true) const {
    const auto& s = *s_;
    std::string repaired;
    if (!detail::is_valid_utf8(text)) { repaired = detail::utf8_lossy(text); text = repaired; }
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 8);
    const bool post = add_special && !s.post.empty();
    size_t seq_at = 0;
    if (post)
      for (const auto& p : s.post) { if (p.is_sequence) break; ids.insert(ids.end(), p.ids.begin(), p.ids.end()); ++seq_at; }
    std::string norm;
    const auto on_text = [&](std::string_view seg, size_t offset) {
      norm.assign(seg);
      if (s.normalizer) s.normalizer->apply(norm);
      if (s.norm_matcher.empty()) { pre_tokenize(norm, offset == 0, ids); return; }
      s.norm_matcher.split(norm, [&](std::string_view piece, size_t off) { pre_tokenize(piece, offset == 0 && off == 0, ids); },
                           [&](const detail::AddedToken& t) { ids.push_back(t.id); });
    };
    s.raw_matcher.split(text, on_text, [&](const detail::AddedToken& t) { ids.push_back(t.id); });
    if (post)
      for (size_t k = seq_at + 1; k < s.post.size(); ++k) ids.insert(ids.end(), s.post[k].ids.begin(), s.post[k].ids.end());
    return ids;
  }

  // Out-of-range ids throw TokenizerError (the reference silently drops them).
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const {
    const auto& s = *s_;
    detail::Tokens toks;
    toks.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      const int32_t id = ids[i];
      if (skip_special && s.special_ids.count(id)) continue;
      toks.push_back(text_of(id, i));
      if (skip_special && s.special_contents.count(toks.back())) toks.pop_back();
    }
    if (!s.decoder) {  // the reference joins with spaces when there is no decoder
      std::string out;
      for (size_t i = 0; i < toks.size(); ++i) { if (i) out += ' '; out += toks[i]; }
      return out;
    }
    s.decoder->apply(toks);
    std::string out;
    for (const auto& t : toks) out += t;
    return out;
  }

  std::string token_text(int32_t id) const { return text_of(id, size_t(-1)); }

  std::optional<int32_t> token_id(std::string_view piece) const {
    if (auto it = s_->added_by_content.find(piece); it != s_->added_by_content.end()) return it->second;
    if (const int32_t id = s_->model.find(piece); id >= 0) return id;
    return std::nullopt;
  }

  // Size of the id space: 1 + the largest id of the model vocabulary or the added tokens.
  size_t vocab_size() const { return s_->vocab_size; }
  std::optional<int32_t> bos_id() const { return s_->bos; }
  // eos_token of the config plus the chat family's end-of-turn tokens (<|im_end|>, <|eot_id|>...).
  std::vector<int32_t> eos_ids() const { return s_->eos; }
  bool is_special(int32_t id) const { return s_->special_ids.count(id) != 0; }

  // The built-in format of the tokenizer's family (Auto: none known).
  ChatFormat chat_format() const { return s_->chat.format; }
  // The model's own template, or failing that a built-in format.
  bool has_chat_template() const { return !s_->templates.empty() || s_->chat.format != ChatFormat::Auto; }
  bool has_own_chat_template() const { return !s_->templates.empty(); }
  // What apply_chat_template uses: the template's source (a file, "<config>: chat_template"),
  // "built-in <format> format", or "" when there is neither.
  std::string chat_template_source() const {
    if (!s_->templates.empty()) return template_named("", false).source();
    if (s_->chat.format != ChatFormat::Auto) return "built-in " + std::string(chat_format_name(s_->chat.format)) + " format";
    return {};
  }
  const SpecialTokens& special_tokens() const { return s_->special_tokens; }

  // The prompt text for `msgs` (special tokens as text: encode it with add_special = false),
  // with the model's own template when it has one, else its family's built-in format.
  std::string apply_chat_template(const std::vector<ChatMessage>& msgs, bool add_generation_prompt) const {
    return apply_chat_template(msgs, add_generation_prompt, ChatFormat::Auto);
  }
  // format Auto: as above; another format: that built-in format, whatever the tokenizer has
  // (e.g. Llama2 for a Llama-2 tokenizer whose config has no template).
  std::string apply_chat_template(const std::vector<ChatMessage>& msgs, bool add_generation_prompt,
                                  ChatFormat format) const {
    if (format == ChatFormat::Auto && !s_->templates.empty()) {
      ChatOptions o;
      o.add_generation_prompt = add_generation_prompt;
      return apply_chat_template(chat_messages_json(msgs), o);
    }
    ChatStyle st = s_->chat;
    if (format != ChatFormat::Auto && format != st.format) {
      st.format = format;
      st.default_system.clear();
      st.always_generation_prompt = false;
    }
    return render_chat(st, msgs, add_generation_prompt);
  }
  // The general form: messages as JSON ([{role, content, tool_calls...}]), tools, documents and
  // extra template variables. `template_name` picks one of several named templates (default:
  // "tool_use" when tools are given and there is one, else "default"). Without a template of
  // its own, the tokenizer's built-in format renders role/content (options other than the
  // generation prompt are then ignored).
  std::string apply_chat_template(const ordered_json& messages, const ChatOptions& o,
                                  const std::string& template_name = {}) const {
    if (!s_->templates.empty())
      return template_named(template_name, !o.tools.is_null()).render(messages, o, s_->special_tokens);
    if (s_->chat.format == ChatFormat::Auto)
      throw UsageError(s_->file, "chat_template", "this tokenizer has no chat template and no built-in chat format");
    if (!messages.is_array()) throw UsageError(s_->file, "messages", "must be a list of messages");
    std::vector<ChatMessage> msgs;
    for (size_t i = 0; i < messages.size(); ++i) {
      const auto& m = messages[i];
      const std::string w = "messages[" + std::to_string(i) + "]";
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
        throw UsageError(s_->file, w + ".role", "a message needs a string role");
      if (!m.contains("content") || !m["content"].is_string())
        throw UsageError(s_->file, w + ".content", "the built-in chat formats need string content");
      msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    }
    return render_chat(s_->chat, msgs, o.add_generation_prompt);
  }

 private:
  Tokenizer() = default;

  const ChatTemplate& template_named(const std::string& name, bool tools) const {
    const auto& ts = s_->templates;
    const auto find = [&](const std::string& n) -> const ChatTemplate* {
      for (const auto& [k, t] : ts) if (k == n) return &t;
      return nullptr;
    };
    if (!name.empty()) {
      if (const ChatTemplate* t = find(name)) return *t;
      std::string names;
      for (const auto& [k, t] : ts) names += (names.empty() ? "" : ", ") + k;
      throw UsageError(s_->file, "chat_template", "no chat template named \"" + name + "\" (have: " + names + ")");
    }
    if (tools)
      if (const ChatTemplate* t = find("tool_use")) return *t;
    if (const ChatTemplate* t = find("default")) return *t;
    throw UsageError(s_->file, "chat_template", "several named chat templates and none is \"default\": pick one by name");
  }

  std::string text_of(int32_t id, size_t pos) const {
    const auto& s = *s_;
    if (auto it = s.added_by_id.find(id); it != s.added_by_id.end()) return s.added[it->second].content;
    if (!s.model.has_id(id))
      throw TokenizerError(s.file, pos == size_t(-1) ? "id" : "ids[" + std::to_string(pos) + "]",
                           "token id " + std::to_string(id) + " out of range (vocabulary size " +
                               std::to_string(s.vocab_size) + ")");
    return s.model.id_to_token()[size_t(id)];
  }

  void pre_tokenize(std::string_view seg, bool at_start, std::vector<int32_t>& ids) const {
    run_stage(0, seg, at_start, ids);
  }
  void run_stage(size_t k, std::string_view piece, bool at_start, std::vector<int32_t>& ids) const {
    if (k == s_->pre.size()) { s_->model.encode_word(piece, ids); return; }
    auto next = [&](std::string_view p, bool st) { run_stage(k + 1, p, st, ids); };
    s_->pre[k]->apply(piece, at_start, detail::PieceSink(next));
  }

  static void load(detail::TokenizerState& s, detail::TokenizerJson& tj, const std::string& file,
                   const detail::json& cfg, const std::string& cfg_file, const std::string& jinja_text,
                   const std::string& jinja_name) {
    using namespace detail;
    const json& j = tj.dom;
    s.file = file;
    const JsonCtx ctx{file};
    if (!j.is_object()) ctx.fail("", "expected a JSON object at top level");
    if (j.contains("truncation") && !j["truncation"].is_null())
      ctx.unsupported("truncation", "truncation settings (encode never truncates)");
    s.normalizer = parse_normalizer(ctx, j.value("normalizer", json()), "normalizer");
    bool byte_level = false;
    parse_pre_tokenizer(ctx, j.value("pre_tokenizer", json()), "pre_tokenizer", s.pre, &byte_level);
    s.model.load(ctx, ctx.at(j, "model", ""), "model", byte_level, tj);
    s.decoder = parse_decoder(ctx, j.value("decoder", json()), "decoder");

    // Added tokens.
    const json added = j.value("added_tokens", json::array());
    if (!added.is_array()) ctx.fail("added_tokens", "expected an array");
    s.added.reserve(added.size());
    for (size_t i = 0; i < added.size(); ++i) {
      const std::string p = "added_tokens[" + std::to_string(i) + "]";
      AddedToken t;
      const long long id = ctx.integer(added[i], "id", p);
      if (id < 0 || id > (1ll << 30)) ctx.fail(p + ".id", "id " + std::to_string(id) + " out of range");
      t.id = int32_t(id);
      t.content = ctx.str(added[i], "content", p);
      // The reference re-adds added tokens on load: one already in the model vocabulary takes
      // the model's id, whatever the file says.
      if (const int32_t mid = s.model.find(t.content); mid >= 0) t.id = mid;
      if (t.content.empty()) ctx.fail(p + ".content", "empty added token");
      t.special = ctx.boolean_or(added[i], "special", p, false);
      t.lstrip = ctx.boolean_or(added[i], "lstrip", p, false);
      t.rstrip = ctx.boolean_or(added[i], "rstrip", p, false);
      t.normalized = ctx.boolean_or(added[i], "normalized", p, !t.special);
      t.single_word = ctx.boolean_or(added[i], "single_word", p, false);
      if (!is_valid_utf8(t.content)) ctx.fail(p + ".content", "not valid UTF-8");
      s.added.push_back(std::move(t));
    }
    for (size_t i = 0; i < s.added.size(); ++i) {
      const auto& t = s.added[i];
      s.added_by_id[t.id] = i;
      s.added_by_content.emplace(t.content, t.id);
      if (t.special) { s.special_ids.insert(t.id); s.special_contents.insert(t.content); }
      (t.normalized ? s.norm_matcher : s.raw_matcher).add(&s.added[i]);
    }
    int64_t max_id = int64_t(s.model.size()) - 1;
    for (const auto& t : s.added) max_id = std::max<int64_t>(max_id, t.id);
    s.vocab_size = size_t(max_id + 1);

    // Post-processor.
    const auto id_of = [&](const std::string& tok, const std::string& where) -> int32_t {
      if (auto it = s.added_by_content.find(tok); it != s.added_by_content.end()) return it->second;
      if (const int32_t id = s.model.find(tok); id >= 0) return id;
      ctx.fail(where, "token \"" + tok + "\" is not in the vocabulary");
    };
    parse_post(s, ctx, j.value("post_processor", json()), "post_processor", id_of);

    // tokenizer_config.json: bos/eos, LlamaTokenizer's add_bos_token/add_eos_token, chat template.
    const JsonCtx cctx{cfg_file};
    if (!cfg.is_object()) cctx.fail("", "expected a JSON object at top level");
    const std::string bos = config_token(cctx, cfg, "bos_token"), eos = config_token(cctx, cfg, "eos_token");
    if (!bos.empty()) s.bos = id_of(bos, cfg_file + ": bos_token");
    if (!eos.empty()) s.eos.push_back(id_of(eos, cfg_file + ": eos_token"));
    const std::string cls = cctx.str_or(cfg, "tokenizer_class", "tokenizer_class", "");
    static const std::unordered_set<std::string> llama_like = {
        "LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast",
        "GemmaTokenizer", "GemmaTokenizerFast"};
    if (llama_like.count(cls)) {
      // transformers' LlamaTokenizerFast rebuilds its post-processor from these two flags.
      const bool add_bos = cctx.boolean_or(cfg, "add_bos_token", "add_bos_token", true);
      const bool add_eos = cctx.boolean_or(cfg, "add_eos_token", "add_eos_token", false);
      if (add_bos && bos.empty()) cctx.fail("add_bos_token", "true but bos_token is not set");
      if (add_eos && eos.empty()) cctx.fail("add_eos_token", "true but eos_token is not set");
      s.post.clear();
      if (add_bos) s.post.push_back({false, {*s.bos}});
      s.post.push_back({true, {}});
      if (add_eos) s.post.push_back({false, {s.eos.front()}});
      if (!add_bos && !add_eos) s.post.clear();
    }
    // The variables transformers' special_tokens_map gives a chat template.
    for (const char* k : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"})
      if (std::string v = config_token(cctx, cfg, k); !v.empty()) s.special_tokens.emplace_back(k, std::move(v));
    load_chat(s, cctx, cfg, bos, eos, cls, jinja_text, jinja_name);
  }

  template <class IdOf>
  static void parse_post(detail::TokenizerState& s, const detail::JsonCtx& ctx, const detail::json& p,
                         const std::string& path, const IdOf& id_of) {
    using namespace detail;
    if (p.is_null()) return;
    const std::string t = ctx.type(p, path);
    if (t == "ByteLevel") return;  // only adjusts offsets
    if (t == "Sequence") {
      const json& arr = ctx.at(p, "processors", path);
      if (!arr.is_array()) ctx.fail(path + ".processors", "expected an array");
      for (size_t i = 0; i < arr.size(); ++i) parse_post(s, ctx, arr[i], path + ".processors[" + std::to_string(i) + "]", id_of);
      return;
    }
    if (t != "TemplateProcessing") ctx.unsupported(path + ".type", "post-processor type \"" + t + "\"");
    if (!s.post.empty()) ctx.unsupported(path, "two TemplateProcessing post-processors");
    const json& single = ctx.at(p, "single", path);
    if (!single.is_array()) ctx.fail(path + ".single", "expected an array");
    const json specials = p.value("special_tokens", json::object());
    bool have_seq = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const std::string w = path + ".single[" + std::to_string(i) + "]";
      const json& e = single[i];
      if (e.is_object() && e.contains("Sequence")) {
        if (have_seq) ctx.unsupported(w, "a template with the sequence twice");
        have_seq = true;
        s.post.push_back({true, {}});
      } else if (e.is_object() && e.contains("SpecialToken")) {
        const std::string name = ctx.str(e["SpecialToken"], "id", w + ".SpecialToken");
        TemplatePiece piece;
        if (specials.contains(name) && specials[name].contains("ids") && specials[name]["ids"].is_array()) {
          for (const auto& id : specials[name]["ids"]) {
            if (!id.is_number_integer()) ctx.fail(path + ".special_tokens." + name + ".ids", "expected integers");
            piece.ids.push_back(id.get<int32_t>());
          }
        } else {
          piece.ids.push_back(id_of(name, w));
        }
        for (int32_t id : piece.ids)
          if (id < 0 || size_t(id) >= s.vocab_size)
            ctx.fail(path + ".special_tokens." + name, "id " + std::to_string(id) + " out of range");
        s.post.push_back(std::move(piece));
      } else {
        ctx.fail(w, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
      }
    }
    if (!have_seq) ctx.fail(path + ".single", "template without the sequence $A");
  }

  // Template source order as transformers: chat_template.jinja, then the config's chat_template
  // (a string, or a list of {name, template}). The built-in family format is detected from the
  // template text (or the vocabulary when there is none): it gives the end-of-turn ids, and is
  // the fallback when there is no template.
  static void load_chat(detail::TokenizerState& s, const detail::JsonCtx& cctx, const detail::json& cfg,
                        const std::string& bos, const std::string& eos, const std::string& cls,
                        const std::string& jinja_text, const std::string& jinja_name) {
    std::string tpl;
    if (!jinja_text.empty()) {
      s.templates.emplace_back("default", ChatTemplate::parse(jinja_text, jinja_name));
      tpl = jinja_text;
    } else if (cfg.contains("chat_template") && !cfg["chat_template"].is_null()) {
      const auto& ct = cfg["chat_template"];
      if (ct.is_string()) {
        tpl = ct.get<std::string>();
        s.templates.emplace_back("default", ChatTemplate::parse(tpl, cctx.file + ": chat_template"));
      } else if (ct.is_array()) {
        for (size_t i = 0; i < ct.size(); ++i) {
          const std::string w = "chat_template[" + std::to_string(i) + "]";
          const auto& e = ct[i];
          if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || !e.contains("template") ||
              !e["template"].is_string())
            cctx.fail(w, "expected {\"name\": string, \"template\": string}");
          const std::string name = e["name"].get<std::string>();
          s.templates.emplace_back(name, ChatTemplate::parse(e["template"].get<std::string>(),
                                                             cctx.file + ": chat_template[" + name + "]"));
          if (name == "default") tpl = e["template"].get<std::string>();
        }
      } else {
        cctx.fail("chat_template", "expected a string or a list of {name, template}");
      }
    }
    auto& st = s.chat;
    st.bos = bos;
    st.eos = eos;
    const auto has = [&](std::string_view tok) { return s.added_by_content.count(tok) || s.model.find(tok) >= 0; };
    const auto in_tpl = [&](std::string_view x) { return tpl.find(x) != std::string::npos; };
    if (!tpl.empty()) {
      if (in_tpl("<|im_start|>")) {
        st.format = in_tpl("<think>") ? ChatFormat::Qwen3 : ChatFormat::ChatML;
        const std::string qwen_default = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
        if (st.format == ChatFormat::ChatML && in_tpl(qwen_default)) st.default_system = qwen_default;
      } else if (in_tpl("<|start_header_id|>")) {
        st.format = ChatFormat::Llama3;
        st.always_generation_prompt = !in_tpl("add_generation_prompt");
      } else if (in_tpl("<<SYS>>")) {
        st.format = ChatFormat::Llama2;
      } else if (in_tpl("[INST]")) {
        st.format = ChatFormat::Mistral;
      }  // else: no built-in family; the template itself is used
    } else if (has("<|im_start|>")) {
      st.format = ChatFormat::ChatML;
    } else if (has("<|start_header_id|>")) {
      st.format = ChatFormat::Llama3;
    } else if (cls.starts_with("Llama") || cls.starts_with("Mistral")) {
      st.format = ChatFormat::Mistral;  // Mistral-7B-v0.1's file has no template (docs/tokenizers.md)
    }
    for (const char* end : {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"}) {
      const bool family = (st.format == ChatFormat::ChatML || st.format == ChatFormat::Qwen3)
                              ? std::string_view(end).starts_with("<|im_end") || std::string_view(end) == "<|endoftext|>"
                              : st.format == ChatFormat::Llama3 && std::string_view(end) != "<|im_end|>" &&
                                    std::string_view(end) != "<|endoftext|>";
      if (!family) continue;
      if (auto it = s.added_by_content.find(std::string_view(end)); it != s.added_by_content.end())
        if (std::find(s.eos.begin(), s.eos.end(), it->second) == s.eos.end()) s.eos.push_back(it->second);
    }
  }

  std::shared_ptr<const detail::TokenizerState> s_;
  friend class StreamDecoder;
};

// Incremental decoding for generation: push() returns the text that became complete with this
// token (possibly empty: a token may end inside a UTF-8 character, or a byte-fallback sequence),
// flush() returns whatever is left. The concatenation of all outputs equals decode(all ids).
// Same algorithm as the reference's DecodeStream: decode a short window of recent ids and emit
// what extends the previous window's text, unless it ends in U+FFFD (an unfinished character).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = false) : tok_(tok), skip_(skip_special) {}

  std::string push(int32_t id) {
    (void)tok_.token_text(id);  // an id out of range throws here, before the state changes
    ids_.push_back(id);
    std::string text = tok_.decode(ids_, skip_);
    if (text.size() > prefix_.size() && !text.ends_with(detail::kReplacementChar) &&
        text.compare(0, prefix_.size(), prefix_) == 0) {
      std::string fresh = text.substr(prefix_.size());
      const size_t new_prefix_index = ids_.size() - prefix_index_;
      ids_.erase(ids_.begin(), ids_.begin() + long(prefix_index_));
      prefix_ = tok_.decode(ids_, skip_);
      prefix_index_ = new_prefix_index;
      return fresh;
    }
    return {};
  }

  std::string flush() {
    std::string text = tok_.decode(ids_, skip_);
    std::string rest = text.size() > prefix_.size() && text.compare(0, prefix_.size(), prefix_) == 0
                           ? text.substr(prefix_.size()) : std::string();
    ids_.clear();
    prefix_.clear();
    prefix_index_ = 0;
    return rest;
  }

 private:
  Tokenizer tok_;
  bool skip_;
  std::vector<int32_t> ids_;
  std::string prefix_;
  size_t prefix_index_ = 0;
};

}  // namespace fathom::tok
