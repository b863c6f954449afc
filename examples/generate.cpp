// generate — the everyday tool: run a model on a prompt (text or ids), greedy or sampled, and
// optionally dump the prompt's logits and any named taps of every layer (residual stream by
// default; attention heads' outputs, MLP activations, ...) for analysis or comparison with another
// implementation.
//
//   generate --prompt "Once upon a time" -n 64
//   generate -m qwen2.5-0.5b/ --prompt "Hello" --chat --temperature 0.7 --seed 1
//   generate --ids 1,403,407 --dump out.safetensors
//   generate -m smollm2.gguf --prompt "Paris is" --dump out.safetensors --dump-taps attn_ctx,mlp_act
//   generate -m smollm2.gguf --prompt "Hello" --chat --policy lac:0.8   # any registered policy
//   generate -m smollm2.gguf --prompts questions.txt --chat --batch 8   # several prompts, batched
//
// With --prompts, every line is a prompt generated on its own (same options and seed each), and
// the replies are printed in the file's order. --batch B decodes up to B of them together
// (continuous batching, model/batch_session.hpp); each reply is identical for every B.
#include "common.hpp"

#include <set>

#include "fathom/depth/policies.hpp"
#include "fathom/io/safetensors.hpp"
#include "fathom/model/batch_generate.hpp"
#include "fathom/model/generate.hpp"

namespace {

// Keeps the prompt's rows of the taps in `which` (every token of the prefill), by "name.layer"
// ("name" for embed, final_norm, logits).
struct DumpObserver {
  static constexpr bool enabled = true;
  size_t tokens = 0;
  std::set<fathom::Tap> which;
  std::map<std::string, std::pair<std::vector<float>, size_t>> rows;  // name -> ([tokens, cols], cols)
  void on_tap(fathom::Tap t, int layer, const fathom::TapView& v) {
    if (!which.count(t)) return;
    auto& [dst, cols] = rows[std::string(fathom::tap_name(t)) + (layer >= 0 ? "." + std::to_string(layer) : "")];
    cols = v.cols;
    dst.resize(tokens * v.cols);
    for (size_t r = 0; r < v.rows; ++r)
      std::copy_n(v.row(r), v.cols, dst.data() + v.slots[r] * v.cols);
  }
};

// --dump-taps: comma-separated tap names.
std::set<fathom::Tap> parse_taps(const std::string& list) {
  std::set<fathom::Tap> taps;
  std::stringstream in(list);
  for (std::string name; std::getline(in, name, ',');) {
    if (name.empty()) continue;
    const auto t = fathom::tap_from_name(name);
    if (!t) {
      std::string known;
      for (size_t i = 0; i < fathom::kTapCount; ++i) known += std::string(i ? ", " : "") + fathom::tap_name(fathom::Tap(i));
      throw fathom::UsageError("", "--dump-taps", "no tap named '" + name + "' (taps: " + known + ")");
    }
    taps.insert(*t);
  }
  return taps;
}

fathom::io::TensorView f32_view(const std::string& name, const std::vector<float>& v,
                                std::vector<int64_t> shape) {
  return {name, fathom::DType::F32, std::move(shape), reinterpret_cast<const std::byte*>(v.data()),
          v.size() * sizeof(float), ""};
}

// --prompts: one generation per prompt, up to `batch` sequences decoding together; replies printed
// in the prompts' order.
int generate_many(const examples::ModelArgs& margs, const fathom::Model& model,
                  const fathom::tok::AnyTokenizer& tok, const std::vector<std::string>& prompts, bool chat,
                  bool no_bos, const fathom::GenerateOptions& gen, const fathom::PolicySpec& spec, size_t batch,
                  bool quiet) {
  if (chat && !tok.has_chat_template())
    throw fathom::UsageError(margs.model, "--chat", "this model's tokenizer has no chat format");
  std::vector<std::vector<int32_t>> ids;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::string text = chat ? tok.apply_chat_template({{"user", prompts[i]}}, true) : prompts[i];
    ids.push_back(tok.encode(text, chat ? false : !no_bos));
    if (ids.back().empty())
      throw fathom::UsageError("", "prompt", "prompt " + std::to_string(i) + " is empty (and no BOS)");
  }
  const fathom::SessionOptions so{0, fathom::KvStrategy::Propagate, margs.kv_precision()};
  std::vector<fathom::Generation> out(ids.size());
  const auto t0 = std::chrono::steady_clock::now();
  fathom::with_policy(model, spec, [&](auto& policy) {
    if (batch <= 1) {
      for (size_t i = 0; i < ids.size(); ++i) {
        fathom::Session s(model, so);
        auto p = policy;
        out[i] = fathom::generate(s, ids[i], gen, p);
      }
      return;
    }
    fathom::BatchSession bs(model, batch, so);
    fathom::generate_batch(
        bs, ids.size(), [&](size_t i) { return fathom::BatchRequest{ids[i], gen}; },
        [&](size_t) { return policy; }, [](size_t, fathom::Session&) {},
        [&](size_t i, fathom::Generation&& g, fathom::Session&) { out[i] = std::move(g); });
  });
  const double secs = examples::seconds_since(t0);
  size_t generated = 0, prompt_tokens = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    generated += out[i].tokens.size(), prompt_tokens += ids[i].size();
    if (quiet) std::cout << tok.decode(out[i].tokens, true) << "\n";
    else std::cout << "[" << i << "] " << prompts[i] << " ▸ " << tok.decode(out[i].tokens, true) << "\n";
  }
  if (!quiet)
    std::fprintf(stderr, "[%zu prompts, %zu prompt tokens, %zu generated in %.2f s: %.1f tok/s | batch %zu | %d threads]\n",
                 ids.size(), prompt_tokens, generated, secs, double(generated) / secs, batch, omp_get_max_threads());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fathom generate: text generation from a Llama/Mistral/Qwen or llama2.c model"};
  examples::ModelArgs margs;
  margs.add(app);
  std::string prompt = "", ids_arg, dump, dump_taps = "embed,resid_post", policy_name = "full", prompts_file;
  size_t batch = 1;
  bool chat = false, no_bos = false, quiet = false;
  fathom::GenerateOptions gen;
  gen.max_new_tokens = 128;
  app.add_option("-p,--prompt", prompt, "prompt text");
  app.add_option("--prompts", prompts_file, "file with one prompt per line: a reply to each, in order");
  app.add_option("--batch", batch, "--prompts: sequences decoded together (1: one after the other; "
                                   "replies identical for every value)")
      ->check(CLI::PositiveNumber);
  app.add_option("--ids", ids_arg, "prompt as comma-separated token ids (instead of --prompt)");
  app.add_flag("--chat", chat, "wrap the prompt as a user turn in the model's chat format");
  app.add_flag("--no-bos", no_bos, "do not add the tokenizer's special tokens (BOS)");
  app.add_option("-n,--max-new-tokens", gen.max_new_tokens, "tokens to generate");
  app.add_option("--temperature", gen.sampling.temperature, "0: greedy (default)");
  app.add_option("--top-p", gen.sampling.top_p, "nucleus sampling mass");
  app.add_option("--seed", gen.sampling.seed, "sampling seed");
  app.add_flag("--ignore-eos", [&](int64_t) { gen.stop_on_eos = false; }, "do not stop at eos");
  app.add_option("--dump", dump, "write the prompt's logits and the --dump-taps rows (safetensors)");
  app.add_option("--dump-taps", dump_taps,
                 "--dump: the named taps to write, comma-separated (docs/architecture.md), as "
                 "\"name.layer\" [tokens, cols]; default embed,resid_post");
  app.add_option("--policy", policy_name,
                 "depth policy by name (docs/policies.md): full (default), lac:α, lac-instream:α, "
                 "static:..., early-exit:[MEASURE:]λ, logit-lens:i, cos-skip:c, ...");
  app.add_flag("-q,--quiet", quiet, "print only the generated text");
  CLI11_PARSE(app, argc, argv);

  return examples::guarded([&] {
    const std::set<fathom::Tap> dump_which = parse_taps(dump_taps);  // a bad name fails before loading
    auto model = margs.load();
    if (!prompts_file.empty())
      return generate_many(margs, *model, margs.load_tokenizer(), examples::read_prompts(prompts_file), chat,
                           no_bos, gen, fathom::parse_policy(policy_name), batch, quiet);
    std::optional<fathom::tok::AnyTokenizer> tok;
    std::vector<int32_t> ids;
    if (!ids_arg.empty()) {
      ids = examples::parse_ids(ids_arg);
      try { tok = margs.load_tokenizer(); } catch (const fathom::Error&) {}  // ids need none
    } else {
      tok = margs.load_tokenizer();
      std::string text = prompt;
      if (chat) {
        if (!tok->has_chat_template())
          throw fathom::UsageError(margs.model, "--chat", "this model's tokenizer has no chat format");
        text = tok->apply_chat_template({{"user", prompt}}, true);
        if (!quiet) std::cerr << "chat template: " << tok->chat_template_source() << "\n";
        ids = tok->encode(text, false);
      } else {
        ids = tok->encode(text, !no_bos);
      }
    }
    if (ids.empty()) throw fathom::UsageError("", "prompt", "empty prompt (and no BOS): nothing to run");

    // The cache holds the positions this run can reach (the prompt, -n tokens and one more), not the
    // default 4,096: less memory to fault in at the start (huge pages: kv_cache.hpp).
    const int64_t reach = int64_t(ids.size()) + int64_t(gen.max_new_tokens) + 1;
    const int64_t max_context = reach <= int64_t(model->config().max_position_embeddings) ? reach : 0;
    fathom::Session session(*model, {max_context, fathom::KvStrategy::Propagate, margs.kv_precision()});
    if (!dump.empty()) {
      DumpObserver obs;
      obs.tokens = ids.size();
      obs.which = dump_which;
      fathom::FullDepth full;
      auto logits = session.forward(ids, fathom::Phase::PP, full, obs, fathom::Logits::All);
      std::vector<float> l(logits.begin(), logits.end());
      std::vector<int64_t> id64(ids.begin(), ids.end());
      const int64_t T = int64_t(ids.size());
      std::vector<fathom::io::TensorView> out = {
          f32_view("logits", l, {T, int64_t(model->vocab())}),
          {"input_ids", fathom::DType::I64, {T}, reinterpret_cast<const std::byte*>(id64.data()),
           id64.size() * 8, ""}};
      for (auto& [name, rows] : obs.rows)
        if (name != "logits") out.push_back(f32_view(name, rows.first, {T, int64_t(rows.second)}));
      fathom::io::save_safetensors(dump, out, {{"model", margs.model}});
      if (!quiet) std::cerr << "wrote " << dump << " (" << out.size() << " tensors: logits, input_ids, the taps)\n";
      session.reset();
    }

    std::vector<int32_t> shown = ids;  // decode the whole text each step: UTF-8 stays whole
    std::string printed = tok ? tok->decode(ids, true) : "";
    if (tok && !quiet) std::cout << printed << std::flush;
    const auto t0 = std::chrono::steady_clock::now();
    double t_first = 0;
    auto on_token = [&](int32_t id) {
      if (t_first == 0) t_first = examples::seconds_since(t0);
      shown.push_back(id);
      if (!tok) { std::cout << id << " " << std::flush; return true; }
      std::string text = tok->decode(shown, true);
      if (text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0) {
        std::cout << text.substr(printed.size()) << std::flush;
        printed = std::move(text);
      }
      return true;
    };
    const fathom::PolicySpec spec = fathom::parse_policy(policy_name);
    fathom::Trace trace(model->n_layers(), false);
    session.set_trace(&trace);
    fathom::Generation g;
    fathom::with_policy(*model, spec, [&](auto& policy) {
      g = fathom::generate(session, ids, gen, policy, on_token);
    });
    const double total = examples::seconds_since(t0);
    std::cout << "\n";
    if (!quiet) {
      const size_t n = g.tokens.size();
      std::fprintf(stderr,
                   "[%zu prompt tokens: %.1f tok/s | %zu generated: %.1f tok/s | %d threads%s]\n",
                   ids.size(), double(ids.size()) / t_first, n,
                   n > 1 ? double(n - 1) / (total - t_first) : 0.0, omp_get_max_threads(),
                   g.stopped_on_eos ? " | stopped at eos" : "");
      if (spec.kind != fathom::PolicySpec::Kind::Full)
        std::fprintf(stderr, "[%s: %.1f%% of layers used in PP, %.1f%% in RG]\n", spec.name.c_str(),
                     100 * trace.usage(fathom::Phase::PP).mean_activated(),
                     100 * trace.usage(fathom::Phase::RG).mean_activated());
    }
    return 0;
  });
}
