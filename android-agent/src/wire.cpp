// Frame header and payload primitives of docs/protocol.md; every length is checked before it is trusted.
#include "wire.h"

#include <cstring>
#include <sstream>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the agent copies tensor data as little-endian bytes; a big-endian port needs byte swapping here"
#endif

namespace confidant::agent {

namespace {

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t load_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t load_u64(const uint8_t* p) { return load_u32(p) | (static_cast<uint64_t>(load_u32(p + 4)) << 32); }
void store_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void store_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

void encode_header(const FrameHeader& h, uint8_t out[kFrameHeaderBytes]) {
  store_u32(out, h.magic);
  store_u16(out + 4, h.kind);
  store_u16(out + 6, h.flags);
  store_u32(out + 8, h.request_id);
  store_u32(out + 12, h.payload_bytes);
}

FrameHeader decode_header(const uint8_t in[kFrameHeaderBytes]) {
  FrameHeader h;
  h.magic = load_u32(in);
  h.kind = load_u16(in + 4);
  h.flags = load_u16(in + 6);
  h.request_id = load_u32(in + 8);
  h.payload_bytes = load_u32(in + 12);
  return h;
}

std::string check_header(const FrameHeader& h) {
  std::ostringstream os;
  if (h.magic != kFrameMagic) {
    os << "bad frame magic 0x" << std::hex << h.magic << " (expected 0x" << kFrameMagic << ", \"CFND\")";
  } else if (h.flags != 0) {
    os << "frame flags must be 0, got 0x" << std::hex << h.flags;
  } else if (h.payload_bytes > kMaxPayloadBytes) {
    os << "frame payload of " << h.payload_bytes << " bytes exceeds the limit of " << kMaxPayloadBytes << " bytes";
  }
  return os.str();
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::I32: return 4;
    case DType::U8: return 1;
  }
  return 0;
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::I32: return "i32";
    case DType::U8: return "u8";
  }
  return "?";
}

size_t Tensor::elements() const {
  size_t n = 1;
  for (uint32_t d : dims) n *= d;
  return n;
}

std::string Tensor::shape_string() const {
  std::ostringstream os;
  os << dtype_name(dtype) << " [";
  for (size_t i = 0; i < dims.size(); ++i) os << (i ? ", " : "") << dims[i];
  os << "]";
  return os.str();
}

Tensor Tensor::make_f32(std::vector<uint32_t> dims, const float* values) {
  Tensor t;
  t.dtype = DType::F32;
  t.dims = std::move(dims);
  t.data.resize(t.elements() * sizeof(float));
  if (values && !t.data.empty()) std::memcpy(t.data.data(), values, t.data.size());
  return t;
}

Tensor Tensor::make_i32(std::vector<uint32_t> dims, const int32_t* values) {
  Tensor t;
  t.dtype = DType::I32;
  t.dims = std::move(dims);
  t.data.resize(t.elements() * sizeof(int32_t));
  if (values && !t.data.empty()) std::memcpy(t.data.data(), values, t.data.size());
  return t;
}

// ---- Reader ----

const uint8_t* Reader::take(size_t n, const char* what) {
  if (n > remaining()) {
    std::ostringstream os;
    os << "payload too short: " << what << " needs " << n << " bytes, " << remaining() << " left";
    throw DecodeError(os.str());
  }
  const uint8_t* p = p_;
  p_ += n;
  return p;
}

uint8_t Reader::u8() { return *take(1, "u8"); }
uint16_t Reader::u16() { return load_u16(take(2, "u16")); }
uint32_t Reader::u32() { return load_u32(take(4, "u32")); }
uint64_t Reader::u64() { return load_u64(take(8, "u64")); }
int32_t Reader::i32() { return static_cast<int32_t>(u32()); }
float Reader::f32() {
  uint32_t bits = u32();
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}
double Reader::f64() {
  uint64_t bits = u64();
  double v;
  std::memcpy(&v, &bits, 8);
  return v;
}

bool Reader::flag() {
  uint8_t v = u8();
  if (v > 1) throw DecodeError("a boolean byte must be 0 or 1, got " + std::to_string(v));
  return v == 1;
}

std::string Reader::string() {
  uint32_t n = u32();
  if (n > kMaxStringBytes) {
    throw DecodeError("string of " + std::to_string(n) + " bytes exceeds the limit of " +
                      std::to_string(kMaxStringBytes) + " bytes");
  }
  const uint8_t* p = take(n, "string bytes");
  return std::string(reinterpret_cast<const char*>(p), n);
}

Tensor Reader::tensor() {
  Tensor t;
  uint8_t dtype = u8();
  if (dtype > static_cast<uint8_t>(DType::U8)) throw DecodeError("unknown tensor dtype " + std::to_string(dtype));
  t.dtype = static_cast<DType>(dtype);
  uint8_t ndim = u8();
  if (ndim > kMaxTensorDims) throw DecodeError("tensor ndim " + std::to_string(ndim) + " exceeds 4");
  uint16_t reserved = u16();
  if (reserved != 0) throw DecodeError("tensor reserved field must be 0, got " + std::to_string(reserved));
  // Multiply in 64 bits and compare with the bytes present after every factor: no overflow, no huge allocation.
  uint64_t bytes = dtype_size(t.dtype);
  for (uint8_t i = 0; i < ndim; ++i) {
    uint32_t d = u32();
    t.dims.push_back(d);
    bytes *= d;
    if (bytes > remaining()) {
      throw DecodeError("tensor " + t.shape_string() + " needs more bytes than the " + std::to_string(remaining()) +
                        " left in the payload");
    }
  }
  const uint8_t* p = take(static_cast<size_t>(bytes), "tensor data");
  t.data.assign(p, p + bytes);
  return t;
}

NamedTensor Reader::named_tensor() {
  NamedTensor nt;
  nt.name = string();
  try {
    nt.tensor = tensor();
  } catch (const DecodeError& e) {
    throw DecodeError("tensor '" + nt.name + "': " + e.what());
  }
  return nt;
}

std::vector<NamedTensor> Reader::tensor_list() {
  uint32_t count = u32();
  // Each entry takes at least 4 (name length) + 4 (tensor header) bytes: reject counts the payload cannot hold.
  if (static_cast<uint64_t>(count) * 8 > remaining()) {
    throw DecodeError("tensor list count " + std::to_string(count) + " does not fit in the " +
                      std::to_string(remaining()) + " bytes left");
  }
  std::vector<NamedTensor> list;
  list.reserve(count);
  for (uint32_t i = 0; i < count; ++i) list.push_back(named_tensor());
  return list;
}

void Reader::expect_end(const char* what) const {
  if (remaining() != 0) {
    throw DecodeError(std::string("payload of ") + what + " has " + std::to_string(remaining()) +
                      " unexpected trailing bytes");
  }
}

// ---- Writer ----

void Writer::bytes(const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  buf_.insert(buf_.end(), p, p + n);
}
void Writer::u8(uint8_t v) { buf_.push_back(v); }
void Writer::u16(uint16_t v) {
  uint8_t b[2];
  store_u16(b, v);
  bytes(b, 2);
}
void Writer::u32(uint32_t v) {
  uint8_t b[4];
  store_u32(b, v);
  bytes(b, 4);
}
void Writer::u64(uint64_t v) {
  u32(static_cast<uint32_t>(v));
  u32(static_cast<uint32_t>(v >> 32));
}
void Writer::i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
void Writer::f32(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  u32(bits);
}
void Writer::f64(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  u64(bits);
}
void Writer::string(const std::string& s) {
  u32(static_cast<uint32_t>(s.size()));
  bytes(s.data(), s.size());
}
void Writer::tensor(const Tensor& t) {
  u8(static_cast<uint8_t>(t.dtype));
  u8(static_cast<uint8_t>(t.dims.size()));
  u16(0);
  for (uint32_t d : t.dims) u32(d);
  bytes(t.data.data(), t.data.size());
}
void Writer::named_tensor(const NamedTensor& t) {
  string(t.name);
  tensor(t.tensor);
}
void Writer::tensor_list(const std::vector<NamedTensor>& list) {
  u32(static_cast<uint32_t>(list.size()));
  for (const NamedTensor& t : list) named_tensor(t);
}

}  // namespace confidant::agent
