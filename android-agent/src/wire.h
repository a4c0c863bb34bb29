// Wire primitives of the host <-> agent protocol (docs/protocol.md): the 16-byte frame header and a bounds-checked
// little-endian payload reader/writer. Knows nothing of commands (protocol.h) or sockets (server.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace confidant::agent {

constexpr uint32_t kFrameMagic = 0x444E4643u;  // the bytes "CFND"
constexpr size_t kFrameHeaderBytes = 16;
constexpr uint32_t kMaxPayloadBytes = 1u << 30;  // 1 GiB
constexpr uint32_t kMaxStringBytes = 1u << 20;   // 1 MiB
constexpr uint32_t kMaxTensorDims = 4;

struct FrameHeader {
  uint32_t magic = kFrameMagic;
  uint16_t kind = 0;
  uint16_t flags = 0;
  uint32_t request_id = 0;
  uint32_t payload_bytes = 0;
};

void encode_header(const FrameHeader& h, uint8_t out[kFrameHeaderBytes]);
FrameHeader decode_header(const uint8_t in[kFrameHeaderBytes]);
// Empty string when the header is acceptable, else why not (bad magic, non-zero flags, payload too long).
std::string check_header(const FrameHeader& h);

// A payload that does not match its command's fields (too short, too long, bad enum, bad shape).
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class DType : uint8_t { F32 = 0, F16 = 1, I32 = 2, U8 = 3 };
size_t dtype_size(DType d);
const char* dtype_name(DType d);

// A protocol tensor: dtype, up to 4 dims, C-order bytes (ndim 0 is a scalar with one element).
struct Tensor {
  DType dtype = DType::F32;
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;

  size_t elements() const;
  std::string shape_string() const;  // e.g. "f32 [2, 16, 64]"
  const float* f32() const { return reinterpret_cast<const float*>(data.data()); }
  float* f32() { return reinterpret_cast<float*>(data.data()); }
  const int32_t* i32() const { return reinterpret_cast<const int32_t*>(data.data()); }
  static Tensor make_f32(std::vector<uint32_t> dims, const float* values);
  static Tensor make_i32(std::vector<uint32_t> dims, const int32_t* values);
};

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// Reads little-endian fields from a byte span; every read checks the remaining length first, so a length field
// is validated against the bytes actually present before anything is allocated.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  explicit Reader(const std::vector<uint8_t>& v) : Reader(v.data(), v.size()) {}

  uint8_t u8();
  uint16_t u16();
  uint32_t u32();
  uint64_t u64();
  int32_t i32();
  float f32();
  double f64();
  bool flag();  // a u8 that must be 0 or 1
  std::string string();
  Tensor tensor();
  NamedTensor named_tensor();
  std::vector<NamedTensor> tensor_list();

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  // Throws unless every byte was consumed (a payload longer than its fields is an error too).
  void expect_end(const char* what) const;

 private:
  const uint8_t* take(size_t n, const char* what);
  const uint8_t* p_;
  const uint8_t* end_;
};

class Writer {
 public:
  void u8(uint8_t v);
  void u16(uint16_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void i32(int32_t v);
  void f32(float v);
  void f64(double v);
  void flag(bool v) { u8(v ? 1 : 0); }
  void string(const std::string& s);
  void tensor(const Tensor& t);
  void named_tensor(const NamedTensor& t);
  void tensor_list(const std::vector<NamedTensor>& list);
  void bytes(const void* data, size_t n);

  std::vector<uint8_t>& buffer() { return buf_; }
  std::vector<uint8_t> take() { return std::move(buf_); }

 private:
  std::vector<uint8_t> buf_;
};

}  // namespace confidant::agent
