// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), bit-identical to zlib's crc32(); used to check stage files.
// Not a general checksum library.
#pragma once
#include <cstddef>
#include <cstdint>

namespace confidant::agent {

// crc32(0, data, n) equals zlib.crc32(data); pass a previous result as `crc` to continue over more bytes.
uint32_t crc32(uint32_t crc, const void* data, size_t n);

}  // namespace confidant::agent
