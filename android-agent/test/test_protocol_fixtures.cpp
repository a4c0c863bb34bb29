// Decodes every frame in test/fixtures/protocol (written by the independent Python encoder make_fixtures.py) with
// the agent's codec, compares every decoded field with the fixture's .json, and re-encodes to identical bytes.
// Fixtures marked "malformed" must be refused by the decoder.
#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <set>

#include "check.h"
#include "confidant/half.h"
#include "json_mini.h"
#include "protocol.h"

using namespace confidant::agent;
using json_mini::Value;

namespace {

Value num(double v) { return Value::number(v); }

Value tensor_json(const Tensor& t) {
  Value v = Value::object();
  v.obj["dtype"] = Value::string(dtype_name(t.dtype));
  Value dims = Value::array();
  for (uint32_t d : t.dims) dims.arr.push_back(num(d));
  v.obj["dims"] = dims;
  Value data = Value::array();
  const size_t n = t.elements();
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = t.data.data() + i * dtype_size(t.dtype);
    double x = 0;
    switch (t.dtype) {
      case DType::F32: {
        float f;
        std::memcpy(&f, p, 4);
        x = f;
        break;
      }
      case DType::F16: {
        uint16_t h;
        std::memcpy(&h, p, 2);
        x = confidant::half_to_float(h);
        break;
      }
      case DType::I32: {
        int32_t k;
        std::memcpy(&k, p, 4);
        x = k;
        break;
      }
      case DType::U8: x = *p; break;
    }
    data.arr.push_back(num(x));
  }
  v.obj["data"] = data;
  return v;
}

Value list_json(const std::vector<NamedTensor>& list) {
  Value v = Value::array();
  for (const NamedTensor& nt : list) {
    Value e = Value::object();
    e.obj["name"] = Value::string(nt.name);
    e.obj["tensor"] = tensor_json(nt.tensor);
    v.arr.push_back(e);
  }
  return v;
}

// Exact comparison: every number the fixture lists is exactly representable in the wire type.
void compare(const Value& want, const Value& got, const std::string& path, const std::string& fixture) {
  const std::string where = fixture + ": " + path;
  if (want.type != got.type) {
    agent_test::fail(__FILE__, __LINE__, where + ": JSON type differs");
    return;
  }
  switch (want.type) {
    case Value::Null: break;
    case Value::Bool: CHECK_MSG(want.b == got.b, where); break;
    case Value::Number:
      CHECK_MSG(want.num == got.num && std::signbit(want.num) == std::signbit(got.num),
                where + ": want " + std::to_string(want.num) + ", got " + std::to_string(got.num));
      break;
    case Value::String: CHECK_MSG(want.str == got.str, where + ": '" + want.str + "' vs '" + got.str + "'"); break;
    case Value::Array:
      if (want.arr.size() != got.arr.size()) {
        agent_test::fail(__FILE__, __LINE__, where + ": array length differs");
        return;
      }
      for (size_t i = 0; i < want.arr.size(); ++i) compare(want.arr[i], got.arr[i], path + "[" + std::to_string(i) + "]", fixture);
      break;
    case Value::Object:
      for (const auto& kv : want.obj) {
        if (!got.has(kv.first)) {
          agent_test::fail(__FILE__, __LINE__, where + "." + kv.first + ": not produced by the decoder");
          continue;
        }
        compare(kv.second, got[kv.first], path + "." + kv.first, fixture);
      }
      for (const auto& kv : got.obj) {
        CHECK_MSG(want.has(kv.first), where + "." + kv.first + ": decoded but absent from the fixture");
      }
      break;
  }
}

struct Codec {
  std::function<Value(const std::vector<uint8_t>&)> decode_fields;
  std::function<std::vector<uint8_t>(const std::vector<uint8_t>&)> reencode;
};

template <class M>
Codec codec(M (*dec)(const std::vector<uint8_t>&), std::function<Value(const M&)> fields) {
  return {[dec, fields](const std::vector<uint8_t>& p) { return fields(dec(p)); },
          [dec](const std::vector<uint8_t>& p) { return encode(dec(p)); }};
}

Codec empty_codec(const char* name) {
  return {[name](const std::vector<uint8_t>& p) {
            decode_empty(p, name);
            return Value::object();
          },
          [name](const std::vector<uint8_t>& p) {
            decode_empty(p, name);
            return std::vector<uint8_t>{};
          }};
}

Value obj(std::initializer_list<std::pair<const std::string, Value>> kv) {
  Value v = Value::object();
  v.obj = std::map<std::string, Value>(kv);
  return v;
}

Value opt_tensor(bool present, const Tensor& t) { return present ? tensor_json(t) : Value(); }

template <class V>
Value num_array(const std::vector<V>& v) {
  Value a = Value::array();
  for (V x : v) a.arr.push_back(num(double(x)));
  return a;
}

std::map<std::pair<std::string, bool>, Codec> codecs() {
  std::map<std::pair<std::string, bool>, Codec> c;
  c[{"HELLO", false}] = codec<HelloRequest>(decode_hello_request, [](const HelloRequest& m) {
    return obj({{"protocol_version", num(m.protocol_version)}, {"token", Value::string(m.token)}});
  });
  c[{"HELLO", true}] = codec<HelloReply>(decode_hello_reply, [](const HelloReply& m) {
    return obj({{"agent_version", Value::string(m.agent_version)},
                {"protocol_version", num(m.protocol_version)},
                {"abi", Value::string(m.abi)},
                {"cpu_threads", num(m.cpu_threads)},
                {"memory_budget_bytes", num(double(m.memory_budget_bytes))},
                {"backends", Value::string(m.backends)},
                {"opencl_device_type", m.short_layout ? Value() : Value::string(m.opencl_device_type)}});
  });
  c[{"LOAD_STAGE", false}] = codec<LoadStageRequest>(decode_load_stage_request, [](const LoadStageRequest& m) {
    return obj({{"path", Value::string(m.path)},
                {"lora_rank", num(m.lora_rank)},
                {"lora_alpha", num(m.lora_alpha)},
                {"target_mask", num(m.target_mask)},
                {"flags", num(m.flags)}});
  });
  c[{"LOAD_STAGE", true}] = codec<LoadStageReply>(decode_load_stage_reply, [](const LoadStageReply& m) {
    return obj({{"layer_start", num(m.layer_start)},
                {"layer_end", num(m.layer_end)},
                {"stage_flags", num(m.stage_flags)},
                {"weight_bytes", num(double(m.weight_bytes))},
                {"lora_param_count", num(double(m.lora_param_count))}});
  });
  c[{"SET_LORA", false}] = codec<SetLoraRequest>(decode_set_lora_request, [](const SetLoraRequest& m) {
    return obj({{"tensors", list_json(m.tensors)}});
  });
  c[{"SET_LORA", true}] = empty_codec("SET_LORA reply");
  c[{"FORWARD", false}] = codec<ForwardRequest>(decode_forward_request, [](const ForwardRequest& m) {
    return obj({{"micro_id", num(m.micro_id)},
                {"flags", num(m.flags)},
                {"input", tensor_json(m.input)},
                {"targets", opt_tensor(m.has_targets, m.targets)},
                {"mask", opt_tensor(m.has_targets, m.mask)}});
  });
  c[{"FORWARD", true}] = codec<ForwardReply>(decode_forward_reply, [](const ForwardReply& m) {
    if (m.output_kind == 0) return obj({{"output_kind", num(0)}, {"hidden", tensor_json(m.hidden)}});
    return obj({{"output_kind", num(1)},
                {"loss_sum", num(m.loss_sum)},
                {"weight_sum", num(m.weight_sum)},
                {"logits", opt_tensor(m.has_logits, m.logits)}});
  });
  c[{"BACKWARD", false}] = codec<BackwardRequest>(decode_backward_request, [](const BackwardRequest& m) {
    return obj({{"micro_id", num(m.micro_id)},
                {"loss_scale", num(m.loss_scale)},
                {"grad_output", opt_tensor(m.has_grad, m.grad_output)}});
  });
  c[{"BACKWARD", true}] = codec<BackwardReply>(decode_backward_reply, [](const BackwardReply& m) {
    return obj({{"grad_input", opt_tensor(m.has_grad_input, m.grad_input)}});
  });
  c[{"GRAD_NORM", false}] = empty_codec("GRAD_NORM");
  c[{"GRAD_NORM", true}] = codec<GradNormReply>(decode_grad_norm_reply, [](const GradNormReply& m) {
    return obj({{"sum_squares", num(m.sum_squares)}});
  });
  c[{"OPTIM_STEP", false}] = codec<OptimStepRequest>(decode_optim_step_request, [](const OptimStepRequest& m) {
    return obj({{"step", num(m.step)},
                {"lr", num(m.lr)},
                {"beta1", num(m.beta1)},
                {"beta2", num(m.beta2)},
                {"eps", num(m.eps)},
                {"weight_decay", num(m.weight_decay)},
                {"grad_scale", num(m.grad_scale)}});
  });
  c[{"OPTIM_STEP", true}] = empty_codec("OPTIM_STEP reply");
  c[{"GET_LORA", false}] = codec<GetLoraRequest>(decode_get_lora_request, [](const GetLoraRequest& m) {
    return obj({{"flags", num(m.flags)}});
  });
  c[{"GET_LORA", true}] = codec<GetLoraReply>(decode_get_lora_reply, [](const GetLoraReply& m) {
    return obj({{"tensors", list_json(m.tensors)}});
  });
  c[{"STATS", false}] = empty_codec("STATS");
  c[{"STATS", true}] = codec<StatsReply>(decode_stats_reply, [](const StatsReply& m) {
    return obj({{"rss_bytes", num(double(m.rss_bytes))},
                {"peak_rss_bytes", num(double(m.peak_rss_bytes))},
                {"busy_us", num(double(m.busy_us))},
                {"forward_count", num(double(m.forward_count))},
                {"backward_count", num(double(m.backward_count))},
                {"bytes_in", num(double(m.bytes_in))},
                {"bytes_out", num(double(m.bytes_out))},
                {"primary_busy_us", m.short_layout ? Value() : num(double(m.primary_busy_us))},
                {"secondary_busy_us", m.short_layout ? Value() : num(double(m.secondary_busy_us))},
                {"temperature_millicelsius", m.has_temperature ? num(m.temperature_millicelsius) : Value()},
                {"temperature_zone", m.has_temperature ? Value::string(m.temperature_zone) : Value()}});
  });
  c[{"SHUTDOWN", false}] = empty_codec("SHUTDOWN");
  c[{"SHUTDOWN", true}] = empty_codec("SHUTDOWN reply");
  c[{"ZERO_GRAD", false}] = empty_codec("ZERO_GRAD");
  c[{"ZERO_GRAD", true}] = empty_codec("ZERO_GRAD reply");
  c[{"NOP", false}] = empty_codec("NOP");  // never answered: no reply codec
  c[{"ZO_FORWARD", false}] = codec<ZoForwardRequest>(decode_zo_forward_request, [](const ZoForwardRequest& m) {
    return obj({{"seed", num(double(m.seed))},
                {"step", num(m.step)},
                {"queries", num(m.queries)},
                {"first_query", num(m.first_query)},
                {"eps", num(m.eps)},
                {"flags", num(m.flags)},
                {"input", tensor_json(m.input)},
                {"targets", opt_tensor(m.has_targets, m.targets)},
                {"mask", opt_tensor(m.has_targets, m.mask)}});
  });
  c[{"ZO_FORWARD", true}] = codec<ZoForwardReply>(decode_zo_forward_reply, [](const ZoForwardReply& m) {
    if (m.output_kind == 0) return obj({{"output_kind", num(0)}, {"hidden", tensor_json(m.hidden)}});
    return obj({{"output_kind", num(1)},
                {"copy_loss_sums", num_array(m.copy_loss_sums)},
                {"copy_weight_sums", num_array(m.copy_weight_sums)}});
  });
  c[{"ZO_STEP", false}] = codec<ZoStepRequest>(decode_zo_step_request, [](const ZoStepRequest& m) {
    return obj({{"seed", num(double(m.seed))}, {"step", num(m.step)}, {"lr", num(m.lr)}, {"g", num_array(m.g)}});
  });
  c[{"ZO_STEP", true}] = empty_codec("ZO_STEP reply");
  c[{"PROFILE", false}] = codec<ProfileRequestMsg>(decode_profile_request, [](const ProfileRequestMsg& m) {
    return obj({{"batch", num(m.batch)}, {"seq_len", num(m.seq_len)}, {"reps", num(m.reps)}});
  });
  c[{"PROFILE", true}] = codec<ProfileReply>(decode_profile_reply, [](const ProfileReply& m) {
    return obj({{"profile_json", Value::string(m.json)}});
  });
  c[{"SET_SPLIT", false}] = codec<SetSplitRequest>(decode_set_split_request, [](const SetSplitRequest& m) {
    Value layers = Value::array();
    for (const SplitEntry& e : m.layers) {
      layers.arr.push_back(obj({{"gpu_kv_groups", num(e.gpu_kv_groups)}, {"gpu_mlp_cols", num(e.gpu_mlp_cols)}}));
    }
    return obj({{"layers", layers}});
  });
  c[{"SET_SPLIT", true}] = empty_codec("SET_SPLIT reply");
  auto error_codec = codec<ErrorReply>(decode_error_reply, [](const ErrorReply& m) {
    return obj({{"error_code", num(double(static_cast<uint32_t>(m.code)))}, {"message", Value::string(m.message)}});
  });
  c[{"ERROR", true}] = error_codec;
  c[{"ERROR", false}] = error_codec;
  return c;
}

}  // namespace

int main() {
  const std::string dir = std::string(REPO_SOURCE_DIR) + "/test/fixtures/protocol";
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > 4 && n.compare(n.size() - 4, 4, ".bin") == 0) names.push_back(n.substr(0, n.size() - 4));
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  CHECK_MSG(!names.empty(), "no fixtures in " + dir + " (run test/fixtures/protocol/make_fixtures.py)");

  const auto table = codecs();
  std::set<std::pair<std::string, bool>> covered;
  size_t malformed = 0;
  for (const std::string& name : names) {
    const std::vector<uint8_t> bin = agent_test::read_file(dir + "/" + name + ".bin");
    const std::vector<uint8_t> js = agent_test::read_file(dir + "/" + name + ".json");
    if (js.empty() || bin.size() < kFrameHeaderBytes) {
      agent_test::fail(__FILE__, __LINE__, name + ": missing .json or short .bin");
      continue;
    }
    Value meta;
    try {
      meta = json_mini::parse(std::string(js.begin(), js.end()));
    } catch (const std::exception& e) {
      agent_test::fail(__FILE__, __LINE__, name + ".json: " + e.what());
      continue;
    }
    const FrameHeader h = decode_header(bin.data());
    CHECK_MSG(check_header(h).empty(), name + ": " + check_header(h));
    CHECK_MSG(h.kind == meta["kind"].num, name + ": kind");
    CHECK_MSG(h.request_id == meta["request_id"].num, name + ": request_id");
    CHECK_MSG(h.payload_bytes == meta["payload_bytes"].num && h.payload_bytes == bin.size() - kFrameHeaderBytes,
              name + ": payload_bytes");
    const std::string command = meta["command"].str;
    const bool is_reply = meta["is_reply"].b;
    // The kind on the wire must agree with the command name: our code table vs the Python encoder's.
    if (command == "ERROR") {
      CHECK_MSG(h.kind == kErrorKind, name + ": ERROR kind");
    } else {
      const uint16_t code = static_cast<uint16_t>(h.kind & ~kReplyBit);
      CHECK_MSG(cmd_name(code) && command == cmd_name(code), name + ": command code of " + command);
      CHECK_MSG(bool(h.kind & kReplyBit) == is_reply, name + ": reply bit");
    }
    auto it = table.find({command, is_reply});
    if (it == table.end()) {
      agent_test::fail(__FILE__, __LINE__, name + ": no codec for " + command);
      continue;
    }
    const std::vector<uint8_t> payload(bin.begin() + kFrameHeaderBytes, bin.end());
    if (meta.has("malformed") && meta["malformed"].b) {
      ++malformed;
      bool threw = false;
      try {
        it->second.decode_fields(payload);
      } catch (const DecodeError&) {
        threw = true;
      }
      CHECK_MSG(threw, name + ": a malformed payload decoded without error (" + meta["note"].str + ")");
      continue;
    }
    covered.insert({command, is_reply});
    try {
      compare(meta["fields"], it->second.decode_fields(payload), "fields", name);
      Frame f;
      f.header = h;
      f.payload = it->second.reencode(payload);
      CHECK_MSG(encode_frame(f) == bin, name + ": re-encoding differs from the fixture bytes");
      // A payload one byte short or long must be refused (BAD_ARGUMENT on the agent).
      if (!payload.empty()) {
        std::vector<uint8_t> shorter(payload.begin(), payload.end() - 1);
        bool threw = false;
        try {
          it->second.decode_fields(shorter);
        } catch (const DecodeError&) {
          threw = true;
        }
        CHECK_MSG(threw, name + ": a truncated payload decoded without error");
      }
      std::vector<uint8_t> longer = payload;
      longer.push_back(0x5A);
      bool threw = false;
      try {
        it->second.decode_fields(longer);
      } catch (const DecodeError&) {
        threw = true;
      }
      CHECK_MSG(threw, name + ": a payload with a trailing byte decoded without error");
    } catch (const std::exception& e) {
      agent_test::fail(__FILE__, __LINE__, name + ": decode failed: " + e.what());
    }
  }
  // Every command in both directions, plus ERROR, must be pinned by at least one fixture.
  for (uint16_t code = 1; code <= kLastCmd; ++code) {
    for (bool reply : {false, true}) {
      if (reply && code == static_cast<uint16_t>(Cmd::Nop)) continue;  // NOP has no reply
      CHECK_MSG(covered.count({cmd_name(code), reply}), std::string("no fixture for ") + cmd_name(code) +
                                                             (reply ? " reply" : " request"));
    }
  }
  CHECK_MSG(covered.count({"ERROR", true}), "no ERROR fixture");
  CHECK_MSG(malformed >= 4, "expected malformed fixtures of ZO_FORWARD, ZO_STEP, PROFILE and SET_SPLIT");
  std::printf("checked %zu protocol fixtures\n", names.size());
  return agent_test::finish("agent.protocol_fixtures");
}
