/*
 * syncpod plugin ABI, version 1.0 — the boundary between the syncpod host and a connector
 * plugin (a shared library).
 *
 * Plugin authors do not write against this file: they write a C++ `syncpod::Connector` and let
 * `SYNCPOD_PLUGIN(...)` (sdk.hpp) generate everything below. It is plain C so that a plugin
 * built by any compiler, standard library or language works with any host of the same major.
 *
 * Compatibility policy
 * --------------------
 * - The major version (SYNCPOD_ABI_MAJOR) changes only when something below changes meaning or
 *   layout. A host loads only plugins of its own major.
 * - A minor version only appends: new members at the end of `syncpod_host` or `syncpod_plugin`,
 *   new enum values, new optional JSON members. A host loads plugins of its major whose minor is
 *   not newer than its own; a plugin can rely only on what its own minor defines.
 * - Both tables start with abi_major, abi_minor and struct_size. Before reading a member that a
 *   later minor appended, the reader checks that struct_size covers it.
 * - Function pointers documented as optional may be NULL; all others never are.
 * - No enum uses 0 for a valid value: a zeroed struct is never mistaken for a valid one.
 *
 * What crosses the boundary
 * -------------------------
 * Only C types and UTF-8 byte buffers (`syncpod_bytes`), most of them JSON documents whose
 * shapes docs/plugin-abi.md describes. No exception crosses it, in either direction: each side
 * catches its own and reports them as a status plus message.
 *
 * Ownership
 * ---------
 * - A `syncpod_bytes` passed as an argument is borrowed: it is valid only until the function it
 *   was passed to returns. The receiver copies what it wants to keep.
 * - `syncpod_host` (and everything it points to) is owned by the host and valid only during the
 *   plugin call it was passed to. A plugin must not keep it, nor call its functions from another
 *   thread or after the call returned.
 * - An instance (`void* instance`) is created by `open` and owned by the host, which releases it
 *   with exactly one `close` call. The host never calls one instance from two threads at once;
 *   different instances may be used from different threads at the same time.
 * - `syncpod_plugin` and its manifest are owned by the plugin, static, and valid while the
 *   library stays loaded. The host keeps the library loaded while any instance of it exists.
 */
#ifndef SYNCPOD_ABI_H
#define SYNCPOD_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SYNCPOD_ABI_MAJOR 1
#define SYNCPOD_ABI_MINOR 0

/* The one symbol a plugin exports. The version in its name lets a future major coexist. */
#define SYNCPOD_PLUGIN_ENTRY syncpod_plugin_entry_v1
#define SYNCPOD_PLUGIN_ENTRY_NAME "syncpod_plugin_entry_v1"

/* Outcome of a plugin call. */
typedef enum syncpod_status {
  SYNCPOD_OK = 1,
  /* The config or request is wrong; retrying the same call cannot help. */
  SYNCPOD_INVALID = 2,
  /* A temporary failure (network, HTTP 429/503, lock timeout): the job may be retried later. */
  SYNCPOD_RETRYABLE = 3,
  /* The foreign system refused the credentials. */
  SYNCPOD_UNAUTHORIZED = 4,
  /* The call stopped because the host asked it to (syncpod_host.cancelled). */
  SYNCPOD_CANCELLED = 5,
  /* Anything else, e.g. an unexpected exception inside the plugin. */
  SYNCPOD_FAILED = 6
} syncpod_status;

typedef enum syncpod_log_level {
  SYNCPOD_LOG_DEBUG = 1,
  SYNCPOD_LOG_INFO = 2,
  SYNCPOD_LOG_WARN = 3,
  SYNCPOD_LOG_ERROR = 4
} syncpod_log_level;

/* A borrowed UTF-8 byte range; not NUL-terminated. */
typedef struct syncpod_bytes {
  const char* data;
  size_t size;
} syncpod_bytes;

/*
 * Services the host offers to the plugin during one call. `context` is opaque to the plugin
 * and is passed back as the first argument of every function here.
 */
typedef struct syncpod_host {
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t struct_size; /* sizeof(syncpod_host) as the host was built */
  void* context;

  /* Writes one log line. The host adds the job and integration to it. */
  void (*log)(void* context, syncpod_log_level level, syncpod_bytes message);

  /* Adds `delta` to the named progress counter of the running job (e.g. "fetched"). */
  void (*progress)(void* context, syncpod_bytes counter, int64_t delta);

  /* Non-zero once the call should stop: the job was cancelled or the worker is shutting down.
     Long calls check it between pages or batches and then return SYNCPOD_CANCELLED. */
  int (*cancelled)(void* context);

  /* Looks up a named secret in the host's secret store. On SYNCPOD_OK, *value is borrowed and
     valid until the current call returns; SYNCPOD_INVALID if there is no such secret. */
  syncpod_status (*secret)(void* context, syncpod_bytes name, syncpod_bytes* value);

  /* Hands one output document of the call to the host, which copies it before returning.
     Anything but SYNCPOD_OK means: stop producing output and return that status. */
  syncpod_status (*emit)(void* context, syncpod_bytes document);

  /* Sets the message explaining a status other than SYNCPOD_OK; the last one set wins. */
  void (*fail)(void* context, syncpod_bytes message);
} syncpod_host;

/*
 * The plugin's table. Every function returns a status; on anything but SYNCPOD_OK it has called
 * host->fail with a message. Documents are JSON unless noted; docs/plugin-abi.md gives shapes.
 */
typedef struct syncpod_plugin {
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t struct_size; /* sizeof(syncpod_plugin) as the plugin was built */

  /* The manifest (JSON object): id, version, abi, streams, capabilities, config_schema. */
  syncpod_bytes manifest;

  /* Creates an endpoint instance from its config (JSON object, secrets resolved). Validates the
     config; on success stores the instance in *instance. Does not contact the foreign system. */
  syncpod_status (*open)(const syncpod_host* host, syncpod_bytes config, void** instance);

  /* Releases an instance. Never fails; called exactly once per successful open. */
  void (*close)(void* instance);

  /* Verifies that the foreign system is reachable and accepts the credentials. */
  syncpod_status (*check)(void* instance, const syncpod_host* host);

  /* Fetches records of one stream (request: stream, mode full|incremental|keys, cursor, keys,
     key_fields, batch_size) and emits them in batches, one document per batch. */
  syncpod_status (*fetch)(void* instance, const syncpod_host* host, syncpod_bytes request);

  /* Optional (NULL: the host compares field values itself). Compares pairs of records
     (current, desired) of one stream; emits one document naming the differing fields of each. */
  syncpod_status (*diff)(void* instance, const syncpod_host* host, syncpod_bytes pairs);

  /* Applies a changeset of one stream (mode plan|commit); emits one document with a result per
     change, in order. In plan mode it writes nothing. */
  syncpod_status (*apply)(void* instance, const syncpod_host* host, syncpod_bytes changeset);
} syncpod_plugin;

/*
 * The entry point. The host passes its own ABI version; the plugin returns its table (static,
 * never NULL). The host, not the plugin, decides whether the two versions are compatible.
 */
typedef const syncpod_plugin* (*syncpod_plugin_entry_fn)(uint32_t host_abi_major,
                                                          uint32_t host_abi_minor);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SYNCPOD_ABI_H */
