#include "syncpod/core/leader_lease.hpp"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <random>

#include "pg.hpp"
#include "syncpod/core/errors.hpp"

namespace syncpod::core {
namespace {

// $1: name, $2: holder, $3: TTL in seconds. Renews while this holder's lease is valid; takes a
// lapsed or released lease with a new term. An UPDATE waits for leader writes that hold the
// row FOR SHARE, so a new term starts only after the old term's last write committed.
const std::string kAcquire = R"SQL(
UPDATE leader_lease SET
  term = CASE WHEN holder = $2 AND expires_at > now() THEN term ELSE term + 1 END,
  acquired_at = CASE WHEN holder = $2 AND expires_at > now() THEN acquired_at ELSE now() END,
  holder = $2,
  expires_at = now() + make_interval(secs => $3::float8)
WHERE name = $1 AND (holder = $2 OR expires_at <= now())
RETURNING term
)SQL";

const std::string kRelease = R"SQL(
UPDATE leader_lease SET expires_at = now()
WHERE name = $1 AND holder = $2 AND term = $3 AND expires_at > now()
)SQL";

const std::string kRead = "SELECT holder, term, " + pg::epochMicros("acquired_at") + ", " +
                          "CASE WHEN expires_at = '-infinity' THEN 0 ELSE " +
                          pg::epochMicros("expires_at") +
                          " END, expires_at > now() FROM leader_lease WHERE name = $1";

}  // namespace

class LeaderLease::Impl {
 public:
  Impl(DatabaseTarget target, std::string name, std::string holder, std::chrono::milliseconds ttl)
      : name_(std::move(name)), holder_(std::move(holder)), ttl_(ttl) {
    target.client = target.client.empty() ? "lease" : target.client;
    target_ = std::move(target);
    connection_ = pg::connect(target_);
  }

  template <class... Args>
  Result<pqxx::result> run(const std::string& sql, Args&&... args) {
    try {
      // A connection lost earlier is opened again: the lease is what a standby polls with.
      if (!connection_ || !connection_->is_open()) connection_ = pg::connect(target_);
      pqxx::nontransaction tx(*connection_);
      return tx.exec_params(sql, std::forward<Args>(args)...);
    } catch (const DatabaseUnavailable& error) {
      return Error{Error::Code::Unavailable, error.what()};
    } catch (const std::exception& error) {
      return pg::toError(error);
    }
  }

  DatabaseTarget target_;
  std::string name_;
  std::string holder_;
  std::chrono::milliseconds ttl_;
  std::unique_ptr<pqxx::connection> connection_;
};

LeaderLease::LeaderLease(DatabaseTarget target, std::string name, std::string holder,
                         std::chrono::milliseconds ttl)
    : impl_(std::make_unique<Impl>(std::move(target), std::move(name), std::move(holder), ttl)) {}

LeaderLease::~LeaderLease() = default;

const std::string& LeaderLease::holder() const { return impl_->holder_; }

Result<std::optional<LeaseToken>> LeaderLease::acquire() {
  auto rows = impl_->run(kAcquire, impl_->name_, impl_->holder_,
                         double(impl_->ttl_.count()) / 1000.0);
  if (!rows) return rows.error();
  if (rows->empty()) return std::optional<LeaseToken>{};
  return std::optional<LeaseToken>{
      LeaseToken{impl_->name_, impl_->holder_, (*rows)[0][0].as<std::int64_t>()}};
}

Result<Done> LeaderLease::release(const LeaseToken& token) {
  auto rows = impl_->run(kRelease, token.name, token.holder, token.term);
  if (!rows) return rows.error();
  return Done{};
}

Result<LeaseState> LeaderLease::read() {
  auto rows = impl_->run(kRead, impl_->name_);
  if (!rows) return rows.error();
  if (rows->empty()) {
    return Error{Error::Code::Invalid, "no lease named '" + impl_->name_ + "' in leader_lease"};
  }
  const auto& row = (*rows)[0];
  LeaseState state;
  state.holder = row[0].as<std::string>();
  state.term = row[1].as<std::int64_t>();
  if (!row[2].is_null()) state.acquired_at = pg::fromEpochMicros(row[2].as<long long>());
  state.expires_at = pg::fromEpochMicros(row[3].as<long long>());
  state.valid = row[4].as<bool>();
  return state;
}

std::string LeaderLease::makeHolderId() {
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  std::random_device random;
  char suffix[9];
  std::snprintf(suffix, sizeof(suffix), "%08x", static_cast<unsigned>(random()));
  return std::string(host.data()) + ":" + std::to_string(getpid()) + ":" + suffix;
}

}  // namespace syncpod::core
