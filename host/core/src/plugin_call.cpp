#include "plugin_call.hpp"

#include <exception>
#include <string.h>  // explicit_bzero

#include <spdlog/spdlog.h>

namespace syncpod::core::detail {
namespace {

spdlog::level::level_enum spdlogLevel(syncpod_log_level level) {
  switch (level) {
    case SYNCPOD_LOG_DEBUG: return spdlog::level::debug;
    case SYNCPOD_LOG_INFO: return spdlog::level::info;
    case SYNCPOD_LOG_WARN: return spdlog::level::warn;
    case SYNCPOD_LOG_ERROR: return spdlog::level::err;
  }
  return spdlog::level::info;
}

const char* statusName(syncpod_status status) {
  switch (status) {
    case SYNCPOD_OK: return "SYNCPOD_OK";
    case SYNCPOD_INVALID: return "SYNCPOD_INVALID";
    case SYNCPOD_RETRYABLE: return "SYNCPOD_RETRYABLE";
    case SYNCPOD_UNAUTHORIZED: return "SYNCPOD_UNAUTHORIZED";
    case SYNCPOD_CANCELLED: return "SYNCPOD_CANCELLED";
    case SYNCPOD_FAILED: return "SYNCPOD_FAILED";
  }
  return nullptr;
}

/// One line: a plugin's message may hold newlines, which would break line-based logs and the
/// one-line error rule.
std::string oneLine(std::string_view text) {
  std::string line(text);
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return line;
}

}  // namespace

std::string_view view(syncpod_bytes bytes) {
  if (bytes.data == nullptr) return {};
  return {bytes.data, bytes.size};
}

void Redactor::add(std::string_view secret) {
  if (!secret.empty()) secrets_.emplace_back(secret);
}

std::string Redactor::apply(std::string_view message) const {
  std::string text(message);
  for (const auto& secret : secrets_) {
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
      text.replace(at, secret.size(), "***");
    }
  }
  return text;
}

PluginCall::PluginCall(std::string_view plugin_id, std::string_view operation,
                       const CallHooks& hooks, const Redactor& redactor)
    : plugin_id_(plugin_id), operation_(operation), hooks_(hooks), redactor_(redactor) {
  host_.abi_major = SYNCPOD_ABI_MAJOR;
  host_.abi_minor = SYNCPOD_ABI_MINOR;
  host_.struct_size = sizeof(syncpod_host);
  host_.context = this;
  host_.log = &PluginCall::logThunk;
  host_.progress = &PluginCall::progressThunk;
  host_.cancelled = &PluginCall::cancelledThunk;
  host_.secret = &PluginCall::secretThunk;
  host_.emit = &PluginCall::emitThunk;
  host_.fail = &PluginCall::failThunk;
}

PluginCall::~PluginCall() {
  // The copies handed to the plugin are wiped, not left in freed heap memory (core dumps).
  for (auto& secret : secrets_) explicit_bzero(secret.data(), secret.size());
}

void PluginCall::outputError(std::string message) {
  if (!output_error_) output_error_ = std::move(message);
}

std::string PluginCall::message(std::string_view text) const {
  return plugin_id_ + ": " + oneLine(redactor_.apply(text));
}

Error PluginCall::internal(std::string_view what) const {
  return {Error::Code::Internal, message(what)};
}

std::optional<Error> PluginCall::run(const std::function<syncpod_status()>& body) {
  syncpod_status status = SYNCPOD_FAILED;
  // A plugin not built with the SDK may let a C++ exception out; it stops here.
  std::optional<std::string> escaped;
  try {
    status = body();
  } catch (const std::exception& error) {
    escaped = operation_ + " let an exception escape the plugin boundary: " + error.what();
  } catch (...) {
    escaped = operation_ + " let an exception escape the plugin boundary";
  }
  // What the host found wrong first explains the rest (an exception may be the plugin's
  // reaction to the host refusing its output).
  if (hook_error_) return internal(*hook_error_);
  if (output_error_) return internal(*output_error_);
  if (escaped) return internal(*escaped);
  return outcome(status);
}

std::optional<Error> PluginCall::outcome(syncpod_status status) const {
  if (stopped_)
    return Error{Error::Code::Cancelled, message(operation_ + " stopped: the host asked it to")};
  if (status == SYNCPOD_OK) return std::nullopt;

  Error::Code code = Error::Code::Internal;
  switch (status) {
    case SYNCPOD_INVALID: code = Error::Code::Invalid; break;
    case SYNCPOD_RETRYABLE: code = Error::Code::Unavailable; break;
    case SYNCPOD_UNAUTHORIZED: code = Error::Code::Unauthorized; break;
    case SYNCPOD_CANCELLED: code = Error::Code::Cancelled; break;
    default: break;
  }
  const char* name = statusName(status);
  if (name == nullptr) {
    return internal(operation_ + " returned an unknown status " +
                    std::to_string(static_cast<long long>(status)) +
                    (failure_ ? " (" + *failure_ + ")" : std::string()));
  }
  if (!failure_ || failure_->empty()) {
    return Error{code, message(operation_ + " returned " + name + " without a message")};
  }
  return Error{code, message(*failure_)};
}

void PluginCall::logThunk(void* context, syncpod_log_level level, syncpod_bytes message) noexcept {
  auto& call = *static_cast<PluginCall*>(context);
  try {
    const std::string text = call.redactor_.apply(view(message));
    if (call.hooks_.log) {
      call.hooks_.log(level, text);
    } else {
      spdlog::log(spdlogLevel(level), "{}: {}", call.plugin_id_, oneLine(text));
    }
  } catch (const std::exception& error) {
    if (!call.hook_error_)
      call.hook_error_ = std::string("the host's log hook failed: ") + error.what();
  } catch (...) {
    if (!call.hook_error_) call.hook_error_ = "the host's log hook failed";
  }
}

void PluginCall::progressThunk(void* context, syncpod_bytes counter, std::int64_t delta) noexcept {
  auto& call = *static_cast<PluginCall*>(context);
  try {
    if (call.hooks_.progress) call.hooks_.progress(view(counter), delta);
  } catch (const std::exception& error) {
    if (!call.hook_error_)
      call.hook_error_ = std::string("the host's progress hook failed: ") + error.what();
  } catch (...) {
    if (!call.hook_error_) call.hook_error_ = "the host's progress hook failed";
  }
}

int PluginCall::cancelledThunk(void* context) noexcept {
  auto& call = *static_cast<PluginCall*>(context);
  if (call.stopped_) return 1;
  try {
    if (call.hooks_.cancelled && call.hooks_.cancelled()) return 1;
  } catch (const std::exception& error) {
    if (!call.hook_error_)
      call.hook_error_ = std::string("the host's cancelled hook failed: ") + error.what();
    return 1;
  } catch (...) {
    if (!call.hook_error_) call.hook_error_ = "the host's cancelled hook failed";
    return 1;
  }
  return 0;
}

syncpod_status PluginCall::secretThunk(void* context, syncpod_bytes name,
                                       syncpod_bytes* value) noexcept {
  auto& call = *static_cast<PluginCall*>(context);
  if (value == nullptr) return SYNCPOD_INVALID;
  *value = {nullptr, 0};
  try {
    if (!call.hooks_.secret) return SYNCPOD_INVALID;
    auto found = call.hooks_.secret(view(name));
    if (!found) return SYNCPOD_INVALID;
    call.redactor_.add(*found);
    const auto& kept = call.secrets_.emplace_back(std::move(*found));
    *value = {kept.data(), kept.size()};
    return SYNCPOD_OK;
  } catch (const std::exception& error) {
    if (!call.hook_error_)
      call.hook_error_ = std::string("the host's secret hook failed: ") + error.what();
  } catch (...) {
    if (!call.hook_error_) call.hook_error_ = "the host's secret hook failed";
  }
  return SYNCPOD_FAILED;
}

syncpod_status PluginCall::emitThunk(void* context, syncpod_bytes document) noexcept {
  auto& call = *static_cast<PluginCall*>(context);
  if (call.output_error_ || call.hook_error_) return SYNCPOD_FAILED;
  if (call.stopped_) return SYNCPOD_CANCELLED;
  try {
    // open and check have no output; what they emit is dropped.
    if (!call.emit_) return SYNCPOD_OK;
    return call.emit_(view(document));
  } catch (const std::exception& error) {
    call.outputError(call.operation_ + ": the host failed to take its output: " + error.what());
  } catch (...) {
    call.outputError(call.operation_ + ": the host failed to take its output");
  }
  return SYNCPOD_FAILED;
}

void PluginCall::failThunk(void* context, syncpod_bytes message) noexcept {
  auto& call = *static_cast<PluginCall*>(context);
  try {
    call.failure_ = std::string(view(message));
  } catch (...) {
    // Out of memory while copying a message: keep the previous one.
  }
}

}  // namespace syncpod::core::detail
