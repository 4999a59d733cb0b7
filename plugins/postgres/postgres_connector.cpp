#include "postgres_connector.hpp"

#include <algorithm>
#include <set>
#include <utility>

#include "pg_text.hpp"

namespace syncpod::plugins::postgres {
namespace {

/// Changes run in groups under one savepoint each; only a group in which a change fails runs
/// again with a savepoint per change. That keeps the subtransactions per batch few (many of
/// them slow down every session of the server) while one bad row still fails alone.
constexpr std::size_t kGroupSize = 50;

std::string joined(const std::vector<std::string>& parts, std::string_view separator = ", ") {
  std::string text;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) text += separator;
    text += parts[i];
  }
  return text;
}

std::string describeKey(const std::vector<std::string>& key) {
  return Json(key).dump();
}

/// A key value that is not a value of its column's type (say "abc" for an integer column): it
/// names no row. Thrown from inside a savepoint, which the caller rolls back.
class KeyDoesNotFit : public SqlError {
 public:
  KeyDoesNotFit() : SqlError("22000", "the key does not fit the key column's type", false) {}
};

/// A create's fields with its key fields added where the record leaves them out.
Json fieldsWithKey(const std::vector<const Column*>& keys, const Change& change) {
  Json fields = change.fields;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (!fields.contains(keys[i]->name)) fields[keys[i]->name] = change.key[i];
  }
  return fields;
}

/// Whether a create can join a run: a NULL key would insert a row the run cannot tell apart.
bool hasNullKey(const std::vector<const Column*>& keys, const Json& fields) {
  return std::any_of(keys.begin(), keys.end(),
                     [&](const Column* key) { return fields.at(key->name).is_null(); });
}

/// The field names of an object, in its (sorted) order.
std::vector<std::string> fieldNames(const Json& fields) {
  std::vector<std::string> names;
  for (const auto& [name, value] : fields.items()) names.push_back(name);
  return names;
}

/// The rows of a statement for many changes, as one text-array parameter per input column,
/// unnested into rows (`unnest($1::int[], $2::text[], …) AS u(…)`): the statement's text, and
/// so its parsing and planning, do not grow with the rows. The first column, syncpod_ord, is
/// each row's place in its run.
class UnnestedInput {
 public:
  explicit UnnestedInput(std::size_t rows) {
    std::vector<std::optional<std::string>> places;
    for (std::size_t n = 0; n < rows; ++n) places.emplace_back(std::to_string(n));
    params_.push_back(textArrayLiteralWithNulls(places));
    arrays_.push_back("$1::int[]");
    aliases_.push_back("syncpod_ord");
    typed_.push_back("u.syncpod_ord");
  }

  /// A column named `alias`, one item per row, selected as `expression` (over u.<alias>).
  void add(const std::vector<std::optional<std::string>>& items, const std::string& alias,
           const std::string& expression) {
    params_.push_back(textArrayLiteralWithNulls(items));
    arrays_.push_back("$" + std::to_string(params_.size()) + "::text[]");
    aliases_.push_back(alias);
    typed_.push_back(expression + " AS " + alias);
  }

  /// SELECT of the typed rows.
  std::string select() const {
    return "SELECT " + joined(typed_) + " FROM unnest(" + joined(arrays_) + ") AS u(" +
           joined(aliases_) + ")";
  }
  const Params& params() const { return params_; }

 private:
  Params params_;
  std::vector<std::string> arrays_;
  std::vector<std::string> aliases_;
  std::vector<std::string> typed_;
};

std::string placeholder(std::size_t index, const std::string& type) {
  return "$" + std::to_string(index) + "::text::" + type;
}

/// `expression` in the form its values compare as.
std::string comparable(const std::string& expression, const Column& column) {
  return column.compare_as.empty() ? expression : "(" + expression + ")::" + column.compare_as;
}

Json configSchema() {
  const Json names = {
      {"type", "array"}, {"items", {{"type", "string"}, {"minLength", 1}}}, {"minItems", 1}};
  Json key_fields = names;
  key_fields["description"] =
      "Columns that identify a row, used when a request names none. Default: the primary key. "
      "Apply's creates need a unique index or constraint on exactly these columns.";
  Json columns = names;
  columns["description"] =
      "The columns a record holds (key columns are always added). Default: all.";
  const Json stream = {
      {"type", "object"},
      {"additionalProperties", false},
      {"required", {"table"}},
      {"properties",
       {{"table",
         {{"type", "string"},
          {"minLength", 1},
          {"description", "Table (or view, if read_only) name."}}},
        {"schema",
         {{"type", "string"},
          {"minLength", 1},
          {"description", "Schema of the table; default: the top-level schema."}}},
        {"key_fields", key_fields},
        {"updated_column",
         {{"type", "string"},
          {"minLength", 1},
          {"description",
           "Column set whenever a row changes (e.g. a timestamp kept by a trigger). Enables "
           "incremental fetch, ordered by (updated_column, key), and is each record's version."}}},
        {"columns", columns},
        {"read_only",
         {{"type", "boolean"},
          {"default", false},
          {"description", "Refuse apply for this stream."}}}}}};
  return {
      {"$schema", "https://json-schema.org/draft/2020-12/schema"},
      {"title", "postgres connector"},
      {"type", "object"},
      {"additionalProperties", false},
      {"required", {"url", "streams"}},
      {"properties",
       {{"url",
         {{"type", "string"},
          {"pattern", "^postgres(ql)?://"},
          {"writeOnly", true},
          {"description",
           "libpq connection URI, e.g. postgresql://user:password@host:5432/db?sslmode=require. "
           "A secret: it holds the password. Messages show it with the password masked "
           "(postgresql://user:***@host/db), logs not at all."}}},
        {"schema",
         {{"type", "string"},
          {"minLength", 1},
          {"default", "public"},
          {"description", "Default schema of the tables."}}},
        {"streams",
         {{"type", "object"},
          {"description", "The streams, by name; each is one table."},
          {"additionalProperties", stream}}},
        {"batch_size",
         {{"type", "integer"},
          {"minimum", 1},
          {"maximum", 100000},
          {"default", 500},
          {"description",
           "Rows per query when fetching (page size), and keys per query of a fetch by keys."}}},
        {"connect_timeout_s",
         {{"type", "integer"},
          {"minimum", 1},
          {"maximum", 600},
          {"default", 10},
          {"description", "Seconds to wait for a connection before giving up (retryable)."}}}}}};
}

}  // namespace

const Column* Table::find(const std::string& name) const {
  const auto found =
      std::find_if(columns.begin(), columns.end(), [&](const Column& c) { return c.name == name; });
  return found == columns.end() ? nullptr : &*found;
}

Manifest PostgresConnector::manifest() {
  Manifest manifest;
  manifest.id = "postgres";
  manifest.version = "1.0.0";
  manifest.description =
      "Tables of a PostgreSQL database, one stream per table. Fetch full and by keys (keyset "
      "paging), incremental for streams that name an updated_column; apply writes each batch "
      "in one transaction with a result per row.";
  manifest.capabilities.fetch_modes = {FetchMode::Full, FetchMode::Incremental, FetchMode::Keys};
  // No incremental_cursor_field: it is set per stream (its updated_column), not by the plugin.
  manifest.capabilities.configurable_streams = true;
  manifest.config_schema = configSchema();
  return manifest;
}

PostgresConnector::PostgresConnector(const Json& config)
    : connection_(config.at("url").get<std::string>(), config.value("connect_timeout_s", 10)),
      default_schema_(config.value("schema", "public")),
      batch_size_(config.value("batch_size", 500)) {
  for (const auto& [name, settings] : config.at("streams").items()) {
    if (name.empty()) throw invalid("streams: a stream name must not be empty");
    StreamConfig stream;
    stream.name = name;
    stream.schema = settings.value("schema", default_schema_);
    stream.table = settings.at("table").get<std::string>();
    if (const auto keys = settings.find("key_fields"); keys != settings.end()) {
      stream.key_fields = keys->get<std::vector<std::string>>();
    }
    if (const auto updated = settings.find("updated_column"); updated != settings.end()) {
      stream.updated_column = updated->get<std::string>();
    }
    if (const auto columns = settings.find("columns"); columns != settings.end()) {
      stream.columns = columns->get<std::vector<std::string>>();
    }
    stream.read_only = settings.value("read_only", false);
    streams_.emplace(name, Stream{std::move(stream), std::nullopt});
  }
}

// ------------------------------------------------------------------------------------------
// Streams and tables.
// ------------------------------------------------------------------------------------------

PostgresConnector::Stream& PostgresConnector::stream(const std::string& name) {
  const auto found = streams_.find(name);
  if (found != streams_.end()) return found->second;
  std::vector<std::string> names;
  for (const auto& entry : streams_) names.push_back(entry.first);
  throw invalid("stream \"" + name + "\" is not configured (configured: " +
                (names.empty() ? std::string("none") : joined(names)) + ")");
}

PostgresConnector::Stream& PostgresConnector::loaded(const std::string& name) {
  Stream& s = stream(name);
  connection_.open();
  if (!s.table) s.table = readTable(s.config);
  return s;
}

Table PostgresConnector::readTable(const StreamConfig& config) {
  Table table;
  table.display = config.schema + "." + config.table;
  const std::string where = "stream \"" + config.name + "\": ";
  try {
    const auto relation = connection_.exec(
        "SELECT c.oid::text, c.relkind IN ('r', 'p'), has_table_privilege(c.oid, 'SELECT'), "
        "has_table_privilege(c.oid, 'INSERT'), has_table_privilege(c.oid, 'UPDATE'), "
        "has_table_privilege(c.oid, 'DELETE') "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
        {config.schema, config.table});
    if (relation.size() == 0) {
      throw invalid(where + "table " + table.display +
                    " does not exist (or this user cannot see it)");
    }
    const std::string oid = relation.text(0, 0);
    table.is_table = relation.flag(0, 1);
    table.can_select = relation.flag(0, 2);
    table.can_insert = relation.flag(0, 3);
    table.can_update = relation.flag(0, 4);
    table.can_delete = relation.flag(0, 5);
    table.qualified = connection_.quote(config.schema) + "." + connection_.quote(config.table);

    // The cast type drops the modifier so that assignment applies it (and fails on a too long
    // varchar instead of truncating it). character and bit without a modifier mean length 1,
    // so those use their unbounded forms.
    const auto columns = connection_.exec(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
        "CASE t.typname WHEN 'bpchar' THEN 'bpchar' WHEN '_bpchar' THEN 'bpchar[]' "
        "WHEN 'bit' THEN 'varbit' WHEN '_bit' THEN 'varbit[]' "
        "ELSE format_type(a.atttypid, NULL) END, "
        "coalesce(e.typname, b.typname, t.typname), coalesce(b.typcategory, t.typcategory) = 'A', "
        "a.attgenerated <> '' "
        "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
        "LEFT JOIN pg_catalog.pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype "
        "LEFT JOIN pg_catalog.pg_type e ON e.oid = coalesce(b.typelem, t.typelem) "
        "  AND coalesce(b.typcategory, t.typcategory) = 'A' "
        "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        {oid});
    for (int row = 0; row < columns.size(); ++row) {
      Column column;
      column.name = columns.text(row, 0);
      column.cast_type = columns.text(row, 2);
      const std::string base = columns.text(row, 3);
      // Modifiers that round (numeric scale, fractional seconds) apply when comparing, so a
      // value compares as it will be stored; length modifiers would silently truncate instead.
      static const std::set<std::string> kRounding = {"numeric", "timestamp", "timestamptz",
                                                      "time",    "timetz",    "interval"};
      column.compare_type = kRounding.count(base) != 0 ? columns.text(row, 1) : column.cast_type;
      column.is_array = columns.flag(row, 4);
      column.generated = columns.flag(row, 5);
      // json has no equality operator, nor do xml and the geometric types (box's "=" compares
      // areas): compare those by their canonical or text form.
      static const std::set<std::string> kNoEquality = {"json", "xml",  "point",   "line",  "lseg",
                                                        "box",  "path", "polygon", "circle"};
      if (base == "json" && !column.is_array) {
        column.compare_as = "jsonb";
      } else if (kNoEquality.count(base) != 0) {
        column.compare_as = "text";
      }
      table.columns.push_back(std::move(column));
    }

    const auto indexes = connection_.exec(
        "SELECT i.indexrelid::text, i.indisprimary, a.attname "
        "FROM pg_catalog.pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = $1::oid AND i.indisunique AND i.indimmediate AND i.indpred IS NULL "
        "AND i.indexprs IS NULL AND k.n <= i.indnkeyatts ORDER BY 1, k.n",
        {oid});
    std::string current;
    for (int row = 0; row < indexes.size(); ++row) {
      if (indexes.text(row, 0) != current) {
        current = indexes.text(row, 0);
        table.unique_keys.emplace_back();
      }
      table.unique_keys.back().insert(indexes.text(row, 2));
      if (indexes.flag(row, 1)) table.primary_key.push_back(indexes.text(row, 2));
    }
  } catch (const SqlError& error) {
    raise(error, where + "reading the columns of " + table.display);
  }

  const auto require = [&](const std::string& name, const char* setting) {
    if (table.find(name) == nullptr) {
      throw invalid(where + "table " + table.display + " has no column \"" + name + "\" (" +
                    setting + ")");
    }
  };
  for (const auto& name : config.key_fields) require(name, "key_fields");
  for (const auto& name : config.columns) require(name, "columns");
  if (config.updated_column) require(*config.updated_column, "updated_column");
  return table;
}

PostgresConnector::Shape PostgresConnector::shape(const Stream& s,
                                                  const std::vector<std::string>& requested) const {
  const Table& table = *s.table;
  const auto& names = !requested.empty()             ? requested
                      : !s.config.key_fields.empty() ? s.config.key_fields
                                                     : table.primary_key;
  if (names.empty()) {
    throw invalid("stream \"" + s.config.name + "\": table " + table.display +
                  " has no primary key; set key_fields in the stream's config");
  }
  Shape result;
  for (const auto& name : names) {
    const Column* column = table.find(name);
    if (column == nullptr) {
      throw invalid("stream \"" + s.config.name + "\": table " + table.display +
                    " has no column \"" + name + "\" (key field)");
    }
    result.keys.push_back(column);
  }
  for (const auto& column : table.columns) {
    const bool wanted =
        s.config.columns.empty() ||
        std::find(s.config.columns.begin(), s.config.columns.end(), column.name) !=
            s.config.columns.end() ||
        std::find(result.keys.begin(), result.keys.end(), &column) != result.keys.end();
    if (wanted) result.selected.push_back(&column);
  }
  return result;
}

std::string PostgresConnector::ref(const Column& column) const {
  return "_r." + connection_.quote(column.name);
}

std::string PostgresConnector::versionExpression(const Stream& s) const {
  if (!s.config.updated_column) return "NULL::text";
  return "to_jsonb(_r." + connection_.quote(*s.config.updated_column) + ") #>> '{}'";
}

std::string PostgresConnector::keyCondition(const Shape& shape, Params& params,
                                            const std::vector<std::string>& key) const {
  std::vector<std::string> columns;
  std::vector<std::string> values;
  for (std::size_t i = 0; i < shape.keys.size(); ++i) {
    params.emplace_back(key[i]);
    columns.push_back(ref(*shape.keys[i]));
    values.push_back(placeholder(params.size(), shape.keys[i]->cast_type));
  }
  return "(" + joined(columns) + ") = (" + joined(values) + ")";
}

void PostgresConnector::raise(const SqlError& error, const std::string& what) const {
  const std::string message = what + ": " + error.what();
  if (error.fatal() || error.transient()) throw retryable(message);
  if (error.sqlClass() == "28" || error.sqlstate() == "42501") throw unauthorized(message);
  if (error.sqlClass() == "42" || error.sqlClass() == "22" || error.sqlClass() == "23")
    throw invalid(message);
  throw PluginError(SYNCPOD_FAILED, message);
}

// ------------------------------------------------------------------------------------------
// check
// ------------------------------------------------------------------------------------------

void PostgresConnector::check(Context& context) {
  connection_.open();
  std::string database;
  try {
    const auto session = connection_.exec("SELECT current_database(), current_user");
    database = "database " + session.text(0, 0) + " as " + session.text(0, 1);
  } catch (const SqlError& error) {
    raise(error, "checking " + connection_.redactedUrl());
  }
  std::vector<std::string> problems;
  for (auto& [name, s] : streams_) {
    try {
      s.table.reset();  // check reads the catalog afresh
      s.table = readTable(s.config);
      const Table& table = *s.table;
      const auto keys = shape(s, {});
      if (!table.can_select)
        problems.push_back("stream \"" + name + "\": no SELECT privilege on " + table.display);
      if (s.config.read_only) continue;
      std::vector<std::string> missing;
      if (!table.can_insert) missing.emplace_back("INSERT");
      if (!table.can_update) missing.emplace_back("UPDATE");
      if (!table.can_delete) missing.emplace_back("DELETE");
      if (!missing.empty()) {
        problems.push_back("stream \"" + name + "\": no " + joined(missing) + " privilege on " +
                           table.display + " (set read_only if the stream is only read)");
      }
      std::set<std::string> key_names;
      for (const auto* column : keys.keys) key_names.insert(column->name);
      if (std::find(table.unique_keys.begin(), table.unique_keys.end(), key_names) ==
          table.unique_keys.end()) {
        std::vector<std::string> list(key_names.begin(), key_names.end());
        problems.push_back("stream \"" + name + "\": table " + table.display +
                           " has no unique index or constraint on (" + joined(list) +
                           "); apply needs one (or set read_only)");
      }
    } catch (const PluginError& error) {
      if (error.status() != SYNCPOD_INVALID) throw;
      problems.emplace_back(error.what());
    }
  }
  if (!problems.empty()) throw invalid(joined(problems, "; "));
  // Not the URL: it is a secret (writeOnly) as a whole, and without a password its redacted
  // form is all of it.
  context.debug("connected to " + database + "; " + std::to_string(streams_.size()) +
                " stream(s) checked");
}

// ------------------------------------------------------------------------------------------
// fetch
// ------------------------------------------------------------------------------------------

void PostgresConnector::fetch(const FetchRequest& request, RecordSink& sink, Context& context) {
  Stream& s = loaded(request.stream);
  const Shape keys = shape(s, request.key_fields);
  switch (request.mode) {
    case FetchMode::Full: fetchPages(s, keys, false, std::nullopt, sink, context); return;
    case FetchMode::Incremental:
      if (!s.config.updated_column) {
        throw invalid("stream \"" + s.config.name +
                      "\": incremental fetch needs \"updated_column\" in the stream's config");
      }
      fetchPages(s, keys, true, request.cursor, sink, context);
      return;
    case FetchMode::Keys: fetchKeys(s, keys, request, sink, context); return;
  }
}

int PostgresConnector::pushRecords(const std::string& sql, const Params& params, RecordSink& sink,
                                   Rows* keep) {
  Rows rows = connection_.exec(sql, params);
  for (int row = 0; row < rows.size(); ++row) {
    const std::string text = rows.text(row, 0);
    Record record;
    record.fields = Json::parse(text, nullptr, false);
    if (record.fields.is_discarded() || !record.fields.is_object()) {
      throw PluginError(SYNCPOD_FAILED, "a row came back as invalid JSON");
    }
    if (!rows.isNull(row, 1)) record.version = rows.text(row, 1);
    sink.push(std::move(record));
  }
  const int count = rows.size();
  if (keep != nullptr) *keep = std::move(rows);
  return count;
}

void PostgresConnector::fetchPages(const Stream& s, const Shape& shape, bool incremental,
                                   const std::optional<std::string>& cursor, RecordSink& sink,
                                   Context& context) {
  const Table& table = *s.table;
  // Keyset paging: each page starts after the last (updated_column,) key of the previous one,
  // so a page costs an index range scan however deep into the table it is. Rows with a NULL in
  // a paging column have no place in that order and are not fetched.
  std::vector<const Column*> order;
  if (incremental) order.push_back(table.find(*s.config.updated_column));
  order.insert(order.end(), shape.keys.begin(), shape.keys.end());

  std::vector<std::string> order_refs;
  std::vector<std::string> not_null;
  std::vector<std::string> as_text;
  for (const auto* column : order) {
    order_refs.push_back(ref(*column));
    not_null.push_back(ref(*column) + " IS NOT NULL");
    as_text.push_back(ref(*column) + "::text");
  }
  std::vector<std::string> output;
  for (const auto* column : shape.selected) output.push_back(ref(*column));

  const std::string select = "SELECT row_to_json(_c.*)::text, " + versionExpression(s) + ", " +
                             joined(as_text) + " FROM " + table.qualified +
                             " AS _r, LATERAL (SELECT " + joined(output) + ") AS _c WHERE " +
                             joined(not_null, " AND ");
  const std::string tail =
      " ORDER BY " + joined(order_refs) + " LIMIT " + std::to_string(batch_size_);

  std::optional<std::vector<std::string>> after;
  if (incremental && cursor) {
    const Json parsed = Json::parse(*cursor, nullptr, false);
    const bool valid = parsed.is_object() && parsed.contains("updated") &&
                       parsed["updated"].is_string() && parsed.contains("key") &&
                       parsed["key"].is_array() && parsed["key"].size() == shape.keys.size() &&
                       std::all_of(parsed["key"].begin(), parsed["key"].end(),
                                   [](const Json& k) { return k.is_string(); });
    if (!valid) {
      throw invalid("stream \"" + s.config.name +
                    "\": the cursor is not one this connector wrote for this stream's key fields");
    }
    after = std::vector<std::string>{parsed["updated"].get<std::string>()};
    for (const auto& part : parsed["key"]) after->push_back(part.get<std::string>());
  }

  const std::string what = "stream \"" + s.config.name + "\": fetching from " + table.display;
  while (true) {
    context.throwIfCancelled();
    Params params;
    std::string sql = select;
    if (after) {
      std::vector<std::string> values;
      for (std::size_t i = 0; i < order.size(); ++i) {
        params.emplace_back((*after)[i]);
        values.push_back(placeholder(i + 1, order[i]->cast_type));
      }
      sql += " AND (" + joined(order_refs) + ") > (" + joined(values) + ")";
    }
    sql += tail;
    Rows page(nullptr);
    int count = 0;
    try {
      count = pushRecords(sql, params, sink, &page);
    } catch (const SqlError& error) {
      raise(error, what);
    }
    if (count == 0) break;
    std::vector<std::string> last;
    for (std::size_t i = 0; i < order.size(); ++i)
      last.push_back(page.text(count - 1, static_cast<int>(i) + 2));
    if (incremental) {
      sink.setCursor(Json{{"updated", last.front()},
                          {"key", std::vector<std::string>(last.begin() + 1, last.end())}}
                         .dump());
    }
    if (count < batch_size_) break;
    after = std::move(last);
  }
}

void PostgresConnector::fetchKeys(const Stream& s, const Shape& shape, const FetchRequest& request,
                                  RecordSink& sink, Context& context) {
  const Table& table = *s.table;
  for (std::size_t i = 0; i < request.keys.size(); ++i) {
    if (request.keys[i].size() != shape.keys.size()) {
      throw invalid("fetch request: key " + std::to_string(i + 1) + " " +
                    describeKey(request.keys[i]) + " has " +
                    std::to_string(request.keys[i].size()) + " values but there are " +
                    std::to_string(shape.keys.size()) + " key fields");
    }
  }
  std::vector<std::string> key_refs;
  for (const auto* column : shape.keys) key_refs.push_back(ref(*column));
  std::vector<std::string> output;
  for (const auto* column : shape.selected) output.push_back(ref(*column));
  const std::string select = "SELECT row_to_json(_c.*)::text, " + versionExpression(s) + " FROM " +
                             table.qualified + " AS _r, LATERAL (SELECT " + joined(output) +
                             ") AS _c WHERE ";
  // One array parameter per key column, cast to an array of the column's type: the comparison
  // is typed, so it can use the key's index and "1.50" finds the numeric 1.5.
  std::vector<std::string> arrays;
  for (std::size_t i = 0; i < shape.keys.size(); ++i) {
    arrays.push_back("$" + std::to_string(i + 1) + "::text[]::" + shape.keys[i]->cast_type + "[]");
  }
  const std::string batch_sql =
      select + "(" + joined(key_refs) + ") IN (SELECT * FROM unnest(" + joined(arrays) + "))";
  const std::string what = "stream \"" + s.config.name + "\": fetching keys from " + table.display;

  const auto batch = static_cast<std::size_t>(batch_size_);
  for (std::size_t begin = 0; begin < request.keys.size(); begin += batch) {
    context.throwIfCancelled();
    const std::size_t end = std::min(request.keys.size(), begin + batch);
    Params params;
    for (std::size_t column = 0; column < shape.keys.size(); ++column) {
      std::vector<std::string> values;
      for (std::size_t k = begin; k < end; ++k) values.push_back(request.keys[k][column]);
      params.emplace_back(textArrayLiteral(values));
    }
    try {
      pushRecords(batch_sql, params, sink, nullptr);
      continue;
    } catch (const SqlError& error) {
      if (error.sqlClass() != "22") raise(error, what);
    }
    // Some key is not a value of its column's type (say "abc" for an integer): such a key
    // names no row. Look the batch's keys up one by one to skip just those.
    for (std::size_t k = begin; k < end; ++k) {
      Params one;
      const std::string sql = select + keyCondition(shape, one, request.keys[k]);
      try {
        pushRecords(sql, one, sink, nullptr);
      } catch (const SqlError& error) {
        if (error.sqlClass() != "22") raise(error, what);
      }
    }
  }
}

// ------------------------------------------------------------------------------------------
// apply
// ------------------------------------------------------------------------------------------

std::optional<ChangeResult> PostgresConnector::precheck(const Stream& s, const Shape& shape,
                                                        const Change& change) const {
  const Table& table = *s.table;
  const auto rejected = [](std::string message) {
    return ChangeResult{ChangeStatus::Rejected, std::move(message)};
  };
  if (change.key.size() != shape.keys.size()) {
    return rejected("the key " + describeKey(change.key) + " has " +
                    std::to_string(change.key.size()) + " values but there are " +
                    std::to_string(shape.keys.size()) + " key fields");
  }
  for (const auto& [name, value] : change.fields.items()) {
    const Column* column = table.find(name);
    if (column == nullptr)
      return rejected("table " + table.display + " has no column \"" + name + "\"");
    if (std::find(shape.selected.begin(), shape.selected.end(), column) == shape.selected.end()) {
      return rejected("column \"" + name + "\" is not one of the stream's columns");
    }
    if (column->generated)
      return rejected("column \"" + name + "\" of " + table.display + " is generated");
    for (std::size_t i = 0; i < shape.keys.size(); ++i) {
      if (shape.keys[i] == column && keyText(value) != change.key[i]) {
        return rejected("column \"" + name + "\" is " + value.dump() + " but the change's key is " +
                        describeKey(change.key) +
                        "; a key cannot change (delete and create instead)");
      }
    }
  }
  return std::nullopt;
}

std::optional<ChangeResult> PostgresConnector::lockedRowsOutcome(
    const Stream& s, const Change& change, int rows, const std::optional<std::string>& version) {
  const Table& table = *s.table;
  const std::string key_text = describeKey(change.key);
  if (rows == 0) {
    if (change.op == ChangeOp::Delete) return ChangeResult{ChangeStatus::Noop, {}};
    return ChangeResult{ChangeStatus::Conflict, "no row with key " + key_text + " in " +
                                                    table.display + " (deleted since it was read?)"};
  }
  if (rows > 1) {
    return ChangeResult{ChangeStatus::Rejected, "key " + key_text + " matches more than one row of " +
                                                    table.display + "; key_fields must identify one row"};
  }
  if (change.expected_version && s.config.updated_column) {
    const std::string stored = version.value_or("");
    if (stored != *change.expected_version) {
      return ChangeResult{ChangeStatus::Conflict, "row " + key_text + " has " +
                                                      *s.config.updated_column + " \"" + stored +
                                                      "\", the change expected \"" +
                                                      *change.expected_version + "\""};
    }
  }
  return std::nullopt;
}

ChangeResult PostgresConnector::runChange(const Stream& s, const Shape& shape,
                                          const Change& change) {
  const Table& table = *s.table;
  if (change.op == ChangeOp::Create) {
    const Json fields = fieldsWithKey(shape.keys, change);
    Params params;
    std::vector<std::string> names;
    std::vector<std::string> values;
    std::vector<std::string> assignments;
    std::vector<std::string> current;
    std::vector<std::string> proposed;
    for (const auto& [name, value] : fields.items()) {
      const Column& column = *table.find(name);
      const std::string quoted = connection_.quote(name);
      params.push_back(parameterText(value, column.is_array));
      names.push_back(quoted);
      values.push_back(placeholder(params.size(), column.cast_type));
      const bool is_key =
          std::find(shape.keys.begin(), shape.keys.end(), &column) != shape.keys.end();
      if (is_key) continue;
      assignments.push_back(quoted + " = EXCLUDED." + quoted);
      current.push_back(comparable("_r." + quoted, column));
      proposed.push_back(comparable("EXCLUDED." + quoted, column));
    }
    std::vector<std::string> conflict;
    for (const auto* column : shape.keys) conflict.push_back(connection_.quote(column->name));
    // The WHERE makes an identical row a no-op: no row version is written and the count is 0.
    std::string sql = "INSERT INTO " + table.qualified + " AS _r (" + joined(names) + ") VALUES (" +
                      joined(values) + ") ON CONFLICT (" + joined(conflict) + ") DO ";
    sql += assignments.empty()
               ? "NOTHING"
               : "UPDATE SET " + joined(assignments) + " WHERE (" + joined(current) +
                     ") IS DISTINCT FROM (" + joined(proposed) + ")";
    const auto rows = connection_.exec(sql, params);
    return {rows.affected() > 0 ? ChangeStatus::Applied : ChangeStatus::Noop, {}};
  }

  // Update and delete: lock the row first, to tell a missing row (or several) from an equal one.
  Params lookup_params;
  const std::string lookup = "SELECT " + versionExpression(s) + " FROM " + table.qualified +
                             " AS _r WHERE " + keyCondition(shape, lookup_params, change.key) +
                             " LIMIT 2 FOR UPDATE";
  std::optional<Rows> found;
  try {
    found.emplace(connection_.exec(lookup, lookup_params));
  } catch (const SqlError& error) {
    // A key that is not a value of the column's type names no row; the savepoint runner
    // turns this marker into the outcome for a missing row.
    if (error.sqlClass() == "22") throw KeyDoesNotFit();
    throw;
  }
  const std::optional<std::string> version =
      found->size() == 1 && !found->isNull(0, 0) ? std::optional(found->text(0, 0)) : std::nullopt;
  if (auto outcome = lockedRowsOutcome(s, change, found->size(), version)) return *outcome;

  Params params;
  const std::string key_condition = keyCondition(shape, params, change.key);
  if (change.op == ChangeOp::Delete) {
    const auto rows = connection_.exec(
        "DELETE FROM " + table.qualified + " AS _r WHERE " + key_condition, params);
    return {rows.affected() > 0 ? ChangeStatus::Applied : ChangeStatus::Noop, {}};
  }
  if (change.fields.empty()) return {ChangeStatus::Noop, {}};
  std::vector<std::string> assignments;
  std::vector<std::string> current;
  std::vector<std::string> proposed;
  for (const auto& [name, value] : change.fields.items()) {
    const Column& column = *table.find(name);
    const std::string quoted = connection_.quote(name);
    params.push_back(parameterText(value, column.is_array));
    const auto index = params.size();
    assignments.push_back(quoted + " = " + placeholder(index, column.cast_type));
    current.push_back(comparable("_r." + quoted, column));
    proposed.push_back(comparable(placeholder(index, column.compare_type), column));
  }
  const auto rows =
      connection_.exec("UPDATE " + table.qualified + " AS _r SET " + joined(assignments) +
                           " WHERE " + key_condition + " AND (" + joined(current) +
                           ") IS DISTINCT FROM (" + joined(proposed) + ")",
                       params);
  return {rows.affected() > 0 ? ChangeStatus::Applied : ChangeStatus::Noop, {}};
}

void PostgresConnector::runCreates(const Stream& s, const Shape& shape,
                                   const std::vector<std::size_t>& run,
                                   const std::vector<Json>& rows,
                                   std::vector<ChangeResult>& results) {
  const Table& table = *s.table;
  const auto names = fieldNames(rows.front());
  std::vector<const Column*> columns;
  std::vector<std::string> quoted;
  for (const auto& name : names) {
    columns.push_back(table.find(name));
    quoted.push_back(connection_.quote(name));
  }
  std::vector<std::vector<std::optional<std::string>>> values(columns.size());
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < columns.size(); ++c) {
      values[c].push_back(parameterText(row.at(columns[c]->name), columns[c]->is_array));
    }
  }
  UnnestedInput input(rows.size());
  std::vector<std::string> assignments;
  std::vector<std::string> current;
  std::vector<std::string> proposed;
  std::vector<std::string> conflict;
  std::vector<std::string> same_key;
  for (std::size_t c = 0; c < columns.size(); ++c) {
    const Column& column = *columns[c];
    input.add(values[c], quoted[c], "(u." + quoted[c] + ")::" + column.cast_type);
    if (std::find(shape.keys.begin(), shape.keys.end(), &column) != shape.keys.end()) {
      conflict.push_back(quoted[c]);
      // The stored key is the given one with the column's modifier applied.
      same_key.push_back("(i." + quoted[c] + ")::" + column.compare_type + " = w." + quoted[c]);
      continue;
    }
    assignments.push_back(quoted[c] + " = EXCLUDED." + quoted[c]);
    current.push_back(comparable("_r." + quoted[c], column));
    proposed.push_back(comparable("EXCLUDED." + quoted[c], column));
  }
  // As runChange's INSERT, for many rows: RETURNING names the rows written; a create whose row
  // was equal already wrote nothing (Noop).
  std::string sql = "WITH syncpod_input AS (" + input.select() + "), syncpod_written AS (INSERT INTO " + table.qualified + " AS _r (" +
                    joined(quoted) + ") SELECT " + joined(quoted) +
                    " FROM syncpod_input ORDER BY syncpod_ord ON CONFLICT (" + joined(conflict) +
                    ") DO ";
  sql += assignments.empty()
             ? "NOTHING"
             : "UPDATE SET " + joined(assignments) + " WHERE (" + joined(current) +
                   ") IS DISTINCT FROM (" + joined(proposed) + ")";
  sql += " RETURNING " + joined(conflict) +
         ") SELECT i.syncpod_ord FROM syncpod_input i JOIN syncpod_written w ON " +
         joined(same_key, " AND ");
  const auto written = connection_.exec(sql, input.params());
  for (const auto index : run) results[index] = {ChangeStatus::Noop, {}};
  for (int row = 0; row < written.size(); ++row) {
    results[run.at(std::stoul(written.text(row, 0)))] = {ChangeStatus::Applied, {}};
  }
}

void PostgresConnector::runKeyed(const Stream& s, const Shape& shape, const Changeset& changeset,
                                 const std::vector<std::size_t>& run,
                                 std::vector<ChangeResult>& results) {
  const Table& table = *s.table;
  const Change& first = changeset.changes.at(run.front());
  const bool update = first.op == ChangeOp::Update;
  std::vector<const Column*> fields;
  if (update) {
    for (const auto& name : fieldNames(first.fields)) fields.push_back(table.find(name));
  }
  // Every change has its place in the run, the version it expects (NULL: none), its key and
  // its new values.
  std::vector<std::optional<std::string>> expected;
  std::vector<std::vector<std::optional<std::string>>> keys(shape.keys.size());
  std::vector<std::vector<std::optional<std::string>>> values(fields.size());
  for (const auto index : run) {
    const Change& change = changeset.changes.at(index);
    expected.push_back(change.expected_version && s.config.updated_column ? change.expected_version
                                                                          : std::nullopt);
    for (std::size_t k = 0; k < keys.size(); ++k) keys[k].emplace_back(change.key.at(k));
    for (std::size_t f = 0; f < fields.size(); ++f) {
      values[f].push_back(parameterText(change.fields.at(fields[f]->name), fields[f]->is_array));
    }
  }
  UnnestedInput input(run.size());
  input.add(expected, "syncpod_expected", "u.syncpod_expected");
  std::vector<std::string> key_refs;
  std::vector<std::string> key_inputs;
  for (std::size_t k = 0; k < keys.size(); ++k) {
    const auto alias = "syncpod_k" + std::to_string(k);
    input.add(keys[k], alias, "(u." + alias + ")::" + shape.keys[k]->cast_type);
    key_refs.push_back(ref(*shape.keys[k]));
    key_inputs.push_back("i." + alias);
  }
  std::vector<std::string> assignments;
  std::vector<std::string> current;
  std::vector<std::string> proposed;
  for (std::size_t f = 0; f < fields.size(); ++f) {
    const Column& column = *fields[f];
    const auto alias = "syncpod_f" + std::to_string(f);
    input.add(values[f], alias, "u." + alias);
    const std::string quoted = connection_.quote(column.name);
    assignments.push_back(quoted + " = (i." + alias + ")::" + column.cast_type);
    current.push_back(comparable("_r." + quoted, column));
    proposed.push_back(comparable("(i." + alias + ")::" + column.compare_type, column));
  }
  const std::string same_key = "(" + joined(key_refs) + ") = (" + joined(key_inputs) + ")";
  // As runChange, for many changes: each key's rows are locked first (two at most, to tell one
  // from several), and only a key with exactly one row, at the version the change expects,
  // is written. The UPDATE and DELETE find the rows again by key: a row changed by another
  // transaction before the lock is then re-read at its latest version, as in runChange.
  const std::string matched =
      "JOIN syncpod_matches m ON m.syncpod_ord = i.syncpod_ord WHERE " + same_key +
      " AND m.syncpod_rows = 1 AND (i.syncpod_expected IS NULL OR "
      "coalesce(m.syncpod_version, '') = i.syncpod_expected)";
  std::string sql =
      "WITH syncpod_input AS (" + input.select() + "), syncpod_found AS MATERIALIZED (SELECT i.syncpod_ord, "
      "f.syncpod_row, f.syncpod_version FROM syncpod_input i CROSS JOIN LATERAL (SELECT (_r.tableoid, "
      "_r.ctid) AS syncpod_row, " + versionExpression(s) + " AS syncpod_version FROM " + table.qualified +
      " AS _r WHERE " + same_key + " LIMIT 2 FOR UPDATE) AS f), syncpod_matches AS (SELECT "
      "syncpod_ord, count(*) AS syncpod_rows, min(syncpod_version) AS syncpod_version FROM "
      "syncpod_found GROUP BY syncpod_ord), syncpod_written AS (";
  sql += update ? "UPDATE " + table.qualified + " AS _r SET " + joined(assignments) +
                      " FROM syncpod_input i " + matched + " AND (" + joined(current) +
                      ") IS DISTINCT FROM (" + joined(proposed) + ")"
                : "DELETE FROM " + table.qualified + " AS _r USING syncpod_input i " + matched;
  sql += " RETURNING i.syncpod_ord) SELECT i.syncpod_ord, coalesce(m.syncpod_rows, 0), "
         "m.syncpod_version, w.syncpod_ord IS NOT NULL, (SELECT count(*) - count(DISTINCT "
         "syncpod_row) FROM syncpod_found) FROM syncpod_input i LEFT JOIN syncpod_matches m ON "
         "m.syncpod_ord = i.syncpod_ord LEFT JOIN syncpod_written w ON w.syncpod_ord = "
         "i.syncpod_ord";
  const auto rows = connection_.exec(sql, input.params());
  // Two keys of the run that name one row ("1.0" and "1" of a numeric key; a row is its table,
  // a partition say, and its place in it): the statement
  // wrote it once, where one change after the other may give other results.
  if (rows.size() > 0 && rows.text(0, 4) != "0") {
    // 21000, cardinality violation, is what ON CONFLICT says for a row affected twice.
    throw SqlError("21000", "two changes of the run name the same row", false);
  }
  for (int row = 0; row < rows.size(); ++row) {
    const auto index = run.at(std::stoul(rows.text(row, 0)));
    const Change& change = changeset.changes.at(index);
    const std::optional<std::string> version =
        rows.isNull(row, 2) ? std::nullopt : std::optional(rows.text(row, 2));
    auto outcome = lockedRowsOutcome(s, change, std::stoi(rows.text(row, 1)), version);
    results[index] = outcome ? std::move(*outcome)
                             : ChangeResult{rows.flag(row, 3) ? ChangeStatus::Applied
                                                               : ChangeStatus::Noop,
                                            {}};
  }
}

void PostgresConnector::runGroup(const Stream& s, const Shape& shape, const Changeset& changeset,
                                 std::size_t begin, std::size_t end,
                                 const std::vector<std::optional<ChangeResult>>& prechecked,
                                 std::vector<ChangeResult>& results, Context& context) {
  // First try: the whole group under one savepoint, and changes that follow each other with
  // the same operation (and, for creates and updates, the same fields) in one statement each.
  connection_.exec("SAVEPOINT syncpod_group");
  bool failed = false;
  for (std::size_t i = begin; i < end && !failed;) {
    if (prechecked[i]) {
      results[i] = *prechecked[i];
      ++i;
      continue;
    }
    try {
      const Change& change = changeset.changes[i];
      std::vector<std::size_t> run = {i++};
      std::vector<Json> rows;  // a run of creates: their fields, the key fields added
      if (change.op == ChangeOp::Create) rows.push_back(fieldsWithKey(shape.keys, change));
      const bool joinable = change.op == ChangeOp::Create   ? !hasNullKey(shape.keys, rows.front())
                            : change.op == ChangeOp::Update ? !change.fields.empty()
                                                            : true;
      if (joinable) {
        // Creates and updates of one run set the same fields; an update that sets none
        // changes nothing, and runs alone.
        const auto names = fieldNames(rows.empty() ? change.fields : rows.front());
        std::set<std::vector<std::string>> keys = {change.key};
        // A key twice in one statement would make it fail (or fold the two); such a change
        // starts the next run.
        while (i < end) {
          if (prechecked[i]) {
            results[i] = *prechecked[i];
            ++i;
            continue;
          }
          const Change& next = changeset.changes[i];
          if (next.op != change.op || keys.count(next.key) != 0) break;
          if (next.op == ChangeOp::Create) {
            Json fields = fieldsWithKey(shape.keys, next);
            if (fieldNames(fields) != names || hasNullKey(shape.keys, fields)) break;
            rows.push_back(std::move(fields));
          } else if (next.op == ChangeOp::Update && fieldNames(next.fields) != names) {
            break;
          }
          keys.insert(next.key);
          run.push_back(i++);
        }
      }
      if (run.size() == 1) {
        results[run.front()] = runChange(s, shape, change);
      } else if (change.op == ChangeOp::Create) {
        runCreates(s, shape, run, rows, results);
      } else {
        runKeyed(s, shape, changeset, run, results);
      }
    } catch (const SqlError& error) {
      if (error.fatal()) throw;
      context.debug("stream \"" + s.config.name + "\": changes " + std::to_string(begin + 1) + "–" +
                    std::to_string(end) + " of " + std::to_string(changeset.changes.size()) +
                    " run again one by one, as one of them failed: " + error.what());
      failed = true;
    }
  }
  if (!failed) {
    connection_.exec("RELEASE SAVEPOINT syncpod_group");
    return;
  }

  // A change failed: undo the group and run it again with a savepoint per change, so that only
  // the failing changes fail. The group's earlier changes give the same results again, as
  // they start from the same state.
  connection_.exec("ROLLBACK TO SAVEPOINT syncpod_group");
  for (std::size_t i = begin; i < end; ++i) {
    if (prechecked[i]) {
      results[i] = *prechecked[i];
      continue;
    }
    const Change& change = changeset.changes[i];
    connection_.exec("SAVEPOINT syncpod_change");
    try {
      results[i] = runChange(s, shape, change);
      connection_.exec("RELEASE SAVEPOINT syncpod_change");
      continue;
    } catch (const KeyDoesNotFit&) {
      results[i] =
          change.op == ChangeOp::Delete
              ? ChangeResult{ChangeStatus::Noop, {}}
              : ChangeResult{ChangeStatus::Conflict, "no row with key " + describeKey(change.key) +
                                                         " in " + s.table->display};
    } catch (const SqlError& error) {
      if (error.fatal()) throw;
      results[i] = {error.transient() ? ChangeStatus::Retryable : ChangeStatus::Rejected,
                    error.what()};
    }
    connection_.exec("ROLLBACK TO SAVEPOINT syncpod_change");
    connection_.exec("RELEASE SAVEPOINT syncpod_change");
  }
  connection_.exec("RELEASE SAVEPOINT syncpod_group");
}

std::vector<ChangeResult> PostgresConnector::apply(const Changeset& changeset, ApplyMode mode,
                                                   Context& context) {
  Stream& s = loaded(changeset.stream);
  const Table& table = *s.table;
  if (s.config.read_only) throw invalid("stream \"" + s.config.name + "\" is read_only");
  const Shape keys = shape(s, changeset.key_fields);
  const bool creates = std::any_of(changeset.changes.begin(), changeset.changes.end(),
                                   [](const Change& c) { return c.op == ChangeOp::Create; });
  if (creates) {
    std::set<std::string> names;
    for (const auto* column : keys.keys) names.insert(column->name);
    if (std::find(table.unique_keys.begin(), table.unique_keys.end(), names) ==
        table.unique_keys.end()) {
      throw invalid("stream \"" + s.config.name + "\": table " + table.display +
                    " has no unique index or constraint on (" +
                    joined(std::vector<std::string>(names.begin(), names.end())) +
                    "), which creates need to find an existing row");
    }
  }

  const std::size_t count = changeset.changes.size();
  std::vector<std::optional<ChangeResult>> prechecked(count);
  for (std::size_t i = 0; i < count; ++i) prechecked[i] = precheck(s, keys, changeset.changes[i]);
  std::vector<ChangeResult> results(count);
  const std::string what = "stream \"" + s.config.name + "\": applying to " + table.display;
  try {
    Transaction transaction(connection_);
    for (std::size_t begin = 0; begin < count; begin += kGroupSize) {
      context.throwIfCancelled();
      runGroup(s, keys, changeset, begin, std::min(count, begin + kGroupSize), prechecked, results,
               context);
    }
    if (mode == ApplyMode::Plan) {
      transaction.rollback();
      return results;
    }
    try {
      transaction.commit();
    } catch (const SqlError& error) {
      if (error.fatal() || error.transient()) throw;
      // A deferred constraint failed at COMMIT: nothing was written.
      for (auto& result : results) {
        if (result.status == ChangeStatus::Applied) {
          result = {ChangeStatus::Rejected,
                    std::string("the transaction failed at COMMIT: ") + error.what()};
        }
      }
      return results;
    }
  } catch (const SqlError& error) {
    raise(error, what);
  }
  return results;
}

}  // namespace syncpod::plugins::postgres

SYNCPOD_PLUGIN(syncpod::plugins::postgres::PostgresConnector)
