// A small JSON reader for test fixtures (objects, arrays, strings with escapes, numbers via strtod, true/false/null).
// Test-only; not hardened for hostile input and not used by the agent itself.
#pragma once
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace json_mini {

struct Value {
  enum Type { Null, Bool, Number, String, Array, Object } type = Null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Value> arr;
  std::map<std::string, Value> obj;

  bool is_null() const { return type == Null; }
  const Value& operator[](const std::string& k) const {
    static const Value null_value;
    auto it = obj.find(k);
    return it == obj.end() ? null_value : it->second;
  }
  bool has(const std::string& k) const { return obj.count(k) != 0; }
  static Value number(double v) {
    Value x;
    x.type = Number;
    x.num = v;
    return x;
  }
  static Value string(std::string s) {
    Value x;
    x.type = String;
    x.str = std::move(s);
    return x;
  }
  static Value array() {
    Value x;
    x.type = Array;
    return x;
  }
  static Value object() {
    Value x;
    x.type = Object;
    return x;
  }
};

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}
  Value parse() {
    Value v = value();
    ws();
    if (i_ != s_.size()) err("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void err(const char* what) { throw std::runtime_error(std::string("json: ") + what + " at " + std::to_string(i_)); }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  bool lit(const char* w) {
    const std::string x = w;
    if (s_.compare(i_, x.size(), x) == 0) {
      i_ += x.size();
      return true;
    }
    return false;
  }
  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }
  unsigned hex4() {
    if (i_ + 4 > s_.size()) err("short \\u escape");
    unsigned v = static_cast<unsigned>(std::stoul(s_.substr(i_, 4), nullptr, 16));
    i_ += 4;
    return v;
  }
  std::string str() {
    std::string out;
    ++i_;  // opening quote
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) err("bad escape");
      char e = s_[i_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && lit("\\u")) cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4() - 0xDC00);
          put_utf8(out, cp);
          break;
        }
        default: out += e; break;  // \" \\ \/
      }
    }
    if (i_ >= s_.size()) err("unterminated string");
    ++i_;
    return out;
  }
  Value value() {
    ws();
    if (i_ >= s_.size()) err("unexpected end");
    Value v;
    const char c = s_[i_];
    if (c == '{') {
      v.type = Value::Object;
      ++i_;
      ws();
      if (s_[i_] == '}') {
        ++i_;
        return v;
      }
      for (;;) {
        ws();
        if (s_[i_] != '"') err("expected key");
        std::string k = str();
        ws();
        if (s_[i_++] != ':') err("expected ':'");
        v.obj[k] = value();
        ws();
        if (s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (s_[i_++] != '}') err("expected '}'");
        return v;
      }
    }
    if (c == '[') {
      v.type = Value::Array;
      ++i_;
      ws();
      if (s_[i_] == ']') {
        ++i_;
        return v;
      }
      for (;;) {
        v.arr.push_back(value());
        ws();
        if (s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (s_[i_++] != ']') err("expected ']'");
        return v;
      }
    }
    if (c == '"') return Value::string(str());
    if (lit("true")) {
      v.type = Value::Bool;
      v.b = true;
      return v;
    }
    if (lit("false")) {
      v.type = Value::Bool;
      return v;
    }
    if (lit("null")) return v;
    const char* start = s_.c_str() + i_;
    char* end = nullptr;
    const double d = std::strtod(start, &end);
    if (end == start) err("bad value");
    i_ += static_cast<size_t>(end - start);
    return Value::number(d);
  }

  const std::string& s_;
  size_t i_ = 0;
};

inline Value parse(const std::string& s) { return Parser(s).parse(); }

}  // namespace json_mini
