// The payload codecs fuzz_payloads picks from with its first input byte (index = byte % count), shared with the
// seed generator (gen_corpus.cpp) so a seed's selector byte names the right decoder. Order is part of the corpus.
#pragma once
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "protocol.h"

namespace confidant::fuzz {

using namespace confidant::agent;

using Bytes = std::vector<uint8_t>;

// decode -> encode for one message type; DecodeError is the only exception a decoder may throw.
template <class Decode>
inline std::function<Bytes(const Bytes&)> codec(Decode decode) {
  return [decode](const Bytes& p) { return encode(decode(p)); };
}

inline Bytes empty_codec(const Bytes& p) {
  decode_empty(p, "empty payload");
  return {};
}

inline const std::vector<std::pair<const char*, std::function<Bytes(const Bytes&)>>>& codecs() {
  static const std::vector<std::pair<const char*, std::function<Bytes(const Bytes&)>>> all = {
      {"HELLO", codec(decode_hello_request)},
      {"HELLO reply", codec(decode_hello_reply)},
      {"LOAD_STAGE", codec(decode_load_stage_request)},
      {"LOAD_STAGE reply", codec(decode_load_stage_reply)},
      {"SET_LORA", codec(decode_set_lora_request)},
      {"FORWARD", codec(decode_forward_request)},
      {"FORWARD reply", codec(decode_forward_reply)},
      {"BACKWARD", codec(decode_backward_request)},
      {"BACKWARD reply", codec(decode_backward_reply)},
      {"GRAD_NORM reply", codec(decode_grad_norm_reply)},
      {"OPTIM_STEP", codec(decode_optim_step_request)},
      {"GET_LORA", codec(decode_get_lora_request)},
      {"GET_LORA reply", codec(decode_get_lora_reply)},
      {"STATS reply", codec(decode_stats_reply)},
      {"ZO_FORWARD", codec(decode_zo_forward_request)},
      {"ZO_FORWARD reply", codec(decode_zo_forward_reply)},
      {"ZO_STEP", codec(decode_zo_step_request)},
      {"PROFILE", codec(decode_profile_request)},
      {"PROFILE reply", codec(decode_profile_reply)},
      {"SET_SPLIT", codec(decode_set_split_request)},
      {"ERROR", codec(decode_error_reply)},
      {"empty", empty_codec},
  };
  return all;
}

// The selector byte of the codec called `name` (for the seed generator).
inline uint8_t codec_index(const char* name) {
  for (size_t i = 0; i < codecs().size(); ++i) {
    if (std::strcmp(codecs()[i].first, name) == 0) return static_cast<uint8_t>(i);
  }
  throw std::invalid_argument(std::string("no payload codec named ") + name);
}

}  // namespace confidant::fuzz
