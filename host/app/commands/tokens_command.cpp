#include <cstdio>
#include <ctime>
#include <iostream>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "syncpod/core/api_tokens.hpp"
#include "syncpod/core/errors.hpp"

namespace syncpod::app {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitUsage = 64;

std::string utcText(std::optional<core::TimePoint> time) { return time ? core::isoTime(*time) : "-"; }

nlohmann::json timeOrNull(std::optional<core::TimePoint> time) {
  return time ? nlohmann::json(core::isoTime(*time)) : nlohmann::json(nullptr);
}

/// `syncpod tokens create|list|revoke`: bearer tokens for the REST API.
class TokensCommand final : public Command {
 public:
  std::string_view name() const override { return "tokens"; }
  std::string_view summary() const override {
    return "create, list or revoke REST API tokens (create | list | revoke)";
  }
  std::string_view usage() const override {
    return "create --name=<name> --scope=read|write|admin | list [--json] | revoke --name=<name>";
  }
  std::string_view details() const override {
    return "sub-commands:\n"
           "  create   prints the new token on stdout, alone on its line; it is shown this once\n"
           "           and stored only as a SHA-256 hash. Scopes: read (GET everything), write\n"
           "           (also create, change, sync, cancel), admin (also tokens and workers)\n"
           "  list     every token: name, scope, first characters, created, last used, revoked\n"
           "  revoke   the token stops working at once\n"
           "\n"
           "exit codes: 0 done; 1 refused (name taken, no such token); 64 usage error;\n"
           "            69 the database failed during the command; 78 configuration error\n"
           "            (database unreachable)\n";
  }
  std::vector<CommandSwitch> switches() const override {
    return {{"name", "the token's name: 1-63 letters, digits, '.', '_' or '-'", "name"},
            {"scope", "create: read, write or admin", "scope"},
            {"json", "list: print JSON instead of text", ""}};
  }
  void enableSwitch(const std::string& name, const std::string& value) override {
    if (name == "json") json_ = true;
    if (name == "name") name_ = value;
    if (name == "scope") scope_ = value;
  }

  int run(const core::Settings& settings, const std::vector<std::string>& args) override {
    const std::string action = args.size() == 1 ? args[0] : "";
    if (action != "create" && action != "list" && action != "revoke") {
      std::cerr << "syncpod tokens: expected `create`, `list` or `revoke`; see `syncpod tokens "
                   "--help`\n";
      return kExitUsage;
    }
    if (action != "list" && name_.empty()) {
      std::cerr << "syncpod tokens " << action << ": give --name=<name>\n";
      return kExitUsage;
    }
    core::DatabaseTarget target{settings.get("database_url"), settings.get("schema")};
    target.validate();
    core::TokenStore store(target);
    if (action == "create") return create(store);
    if (action == "revoke") return revoke(store);
    return list(store);
  }

 private:
  int create(core::TokenStore& store) const {
    const auto scope = core::parseTokenScope(scope_);
    if (!scope) {
      std::cerr << "syncpod tokens create: give --scope=read, write or admin"
                << (scope_.empty() ? "" : ", not '" + scope_ + "'") << "\n";
      return kExitUsage;
    }
    auto created = store.create(name_, *scope);
    if (!created) return refused(created.error());
    std::cerr << "token '" << created->token.name << "' (" << core::toString(*scope)
              << ") created; it is shown only this once:\n";
    std::cout << created->secret << std::endl;
    return kExitOk;
  }

  int revoke(core::TokenStore& store) const {
    auto revoked = store.revoke(name_);
    if (!revoked) return refused(revoked.error());
    std::cerr << "token '" << revoked->name << "' revoked\n";
    return kExitOk;
  }

  int list(core::TokenStore& store) const {
    auto tokens = store.list();
    if (!tokens) return refused(tokens.error());
    if (json_) {
      auto document = nlohmann::json::array();
      for (const auto& token : *tokens) {
        document.push_back({{"name", token.name},
                            {"scope", core::toString(token.scope)},
                            {"prefix", token.prefix},
                            {"created_at", utcText(token.created_at)},
                            {"last_used_at", timeOrNull(token.last_used_at)},
                            {"revoked_at", timeOrNull(token.revoked_at)}});
      }
      std::cout << document.dump(2) << "\n";
      return kExitOk;
    }
    std::printf("%-24s %-6s %-8s %-24s %-24s %s\n", "NAME", "SCOPE", "PREFIX", "CREATED",
                "LAST USED", "REVOKED");
    for (const auto& token : *tokens) {
      std::printf("%-24s %-6s %-8s %-24s %-24s %s\n", token.name.c_str(),
                  std::string(core::toString(token.scope)).c_str(), token.prefix.c_str(),
                  utcText(token.created_at).c_str(), utcText(token.last_used_at).c_str(),
                  utcText(token.revoked_at).c_str());
    }
    return kExitOk;
  }

  static int refused(const core::Error& error) {
    std::cerr << "syncpod tokens: " << error.message << "\n";
    return error.code == core::Error::Code::Invalid ? kExitRefused : 69;
  }

  bool json_ = false;
  std::string name_;
  std::string scope_;
};

}  // namespace

CommandPtr makeTokensCommand() { return std::make_unique<TokensCommand>(); }

}  // namespace syncpod::app
