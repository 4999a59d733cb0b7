// The postgres connector: each stream is a table (or view, for reading) of one PostgreSQL
// database. Fetch pages through it by key; apply writes a changeset in one transaction.
// README.md beside this file is the user-facing reference.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <syncpod/sdk.hpp>

#include "pg_connection.hpp"

namespace syncpod::plugins::postgres {

/// One column as the catalog describes it.
struct Column {
  std::string name;
  /// What parameters are cast to: the type without its modifier (numeric, character varying),
  /// so that assigning to the column applies the modifier and fails on a too long value.
  std::string cast_type;
  /// What a new value is cast to when compared with the stored one: with a rounding modifier
  /// (numeric(10,2), timestamp(3)) kept, otherwise cast_type.
  std::string compare_type;
  /// How to compare values: "" natively, "jsonb" for json, "text" for types without equality.
  std::string compare_as;
  bool is_array = false;
  bool generated = false;
};

/// A table as the catalog describes it, read once per instance (check reads it again).
struct Table {
  std::string display;    ///< schema.table, for messages
  std::string qualified;  ///< "schema"."table", for SQL
  bool is_table = false;  ///< a table (not a view, materialized view or foreign table)
  bool can_select = false;
  bool can_insert = false;
  bool can_update = false;
  bool can_delete = false;
  std::vector<Column> columns;  ///< in table order
  std::vector<std::string> primary_key;
  /// Column sets of the unique indexes ON CONFLICT can use (immediate, not partial).
  std::vector<std::set<std::string>> unique_keys;

  const Column* find(const std::string& name) const;
};

struct StreamConfig {
  std::string name;
  std::string schema;
  std::string table;
  std::vector<std::string> key_fields;  ///< empty: the primary key
  std::optional<std::string> updated_column;
  std::vector<std::string> columns;  ///< empty: all columns
  bool read_only = false;
};

class PostgresConnector final : public Connector {
 public:
  static Manifest manifest();

  /// Reads a config that passed the manifest's schema and parses its URL; does not connect.
  explicit PostgresConnector(const Json& config);

  void check(Context& context) override;
  void fetch(const FetchRequest& request, RecordSink& sink, Context& context) override;
  std::vector<ChangeResult> apply(const Changeset& changeset, ApplyMode mode,
                                  Context& context) override;

 private:
  struct Stream {
    StreamConfig config;
    std::optional<Table> table;
  };
  /// The key and output columns of one call.
  struct Shape {
    std::vector<const Column*> keys;
    std::vector<const Column*> selected;
  };

  Stream& stream(const std::string& name);
  /// The stream with its table read and its config checked against it.
  Stream& loaded(const std::string& name);
  Table readTable(const StreamConfig& config);
  Shape shape(const Stream& stream, const std::vector<std::string>& requested_keys) const;

  void fetchPages(const Stream& stream, const Shape& shape, bool incremental,
                  const std::optional<std::string>& cursor, RecordSink& sink, Context& context);
  void fetchKeys(const Stream& stream, const Shape& shape, const FetchRequest& request,
                 RecordSink& sink, Context& context);
  /// Runs a query whose first column is a record's JSON and second its version; pushes them.
  int pushRecords(const std::string& sql, const Params& params, RecordSink& sink, Rows* keep);

  std::optional<ChangeResult> precheck(const Stream& stream, const Shape& shape,
                                       const Change& change) const;
  ChangeResult runChange(const Stream& stream, const Shape& shape, const Change& change);
  /// Runs the creates `run` (indexes into the changeset, same fields, distinct keys; `rows`
  /// their fields with the key fields added) as one statement; throws SqlError as runChange
  /// does.
  void runCreates(const Stream& stream, const Shape& shape, const std::vector<std::size_t>& run,
                  const std::vector<Json>& rows, std::vector<ChangeResult>& results);
  /// Runs the updates or the deletes `run` (indexes into the changeset, distinct keys; updates
  /// that set the same fields) as one statement, with runChange's outcomes; throws SqlError as
  /// runChange does, and when two of their keys name one row.
  void runKeyed(const Stream& stream, const Shape& shape, const Changeset& changeset,
                const std::vector<std::size_t>& run, std::vector<ChangeResult>& results);
  /// What an update or delete comes to once its key's rows are locked, when it is not written:
  /// `rows` found (at most 2), `version` the updated_column of the one found.
  static std::optional<ChangeResult> lockedRowsOutcome(const Stream& stream, const Change& change,
                                                       int rows,
                                                       const std::optional<std::string>& version);
  /// Runs changes [begin, end) of one transaction; see kGroupSize.
  void runGroup(const Stream& stream, const Shape& shape, const Changeset& changeset,
                std::size_t begin, std::size_t end,
                const std::vector<std::optional<ChangeResult>>& prechecked,
                std::vector<ChangeResult>& results, Context& context);

  std::string ref(const Column& column) const;
  std::string versionExpression(const Stream& stream) const;
  std::string keyCondition(const Shape& shape, Params& params,
                           const std::vector<std::string>& key) const;

  /// Turns a database error into the PluginError a call ends with.
  [[noreturn]] void raise(const SqlError& error, const std::string& what) const;

  Connection connection_;
  std::string default_schema_;
  int batch_size_ = 500;
  std::map<std::string, Stream> streams_;
};

}  // namespace syncpod::plugins::postgres
