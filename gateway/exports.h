/* exports.h — what libluagw.so exports: the functions the specs and the
 * busted harness (scripts/luagw/harness.lua) call through LuaJIT's FFI.
 *
 * The core is compiled with -fvisibility=hidden, so nothing else leaves
 * the library: the rest of gateway/ may change without breaking a caller
 * outside it, and calls inside it bind directly. The Makefile includes
 * this file first in every gateway object (-include); the declarations
 * below give each listed function default visibility before its definition.
 * spec/exports_spec.lua checks that the library exports exactly this list
 * and that it is what the Lua side declares. */
#ifndef GW_EXPORTS_H
#define GW_EXPORTS_H

#include "arena.h"
#include "buf.h"
#include "clock.h"
#include "config.h"
#include "conns.h"
#include "fanout.h"
#include "harness.h"
#include "inflight.h"
#include "influx.h"
#include "json.h"
#include "jsonw.h"
#include "lineproto.h"
#include "log.h"
#include "memo.h"
#include "metrics.h"
#include "point.h"
#include "refusal.h"
#include "route.h"
#include "script.h"
#include "sender.h"
#include "spool.h"
#include "tenant.h"
#include "typecheck.h"
#include "utf8.h"

#define GW_EXPORT(f) __attribute__((visibility("default"))) __typeof__(f) f;

/* arena.h */
GW_EXPORT(gw_arena_alloc)
GW_EXPORT(gw_arena_create)
GW_EXPORT(gw_arena_destroy)
GW_EXPORT(gw_arena_dup)
GW_EXPORT(gw_arena_reset)
GW_EXPORT(gw_arena_used)


/* buf.h */
GW_EXPORT(gw_buf_free)

/* clock.h */
GW_EXPORT(gw_clock_mono)

/* config.h */
GW_EXPORT(gw_config_free)
GW_EXPORT(gw_config_load)
GW_EXPORT(gw_config_print_reference)
GW_EXPORT(gw_config_tree)
GW_EXPORT(gw_config_value)

/* conns.h */
GW_EXPORT(gw_conns_admit)
GW_EXPORT(gw_conns_closed)
GW_EXPORT(gw_conns_create)
GW_EXPORT(gw_conns_destroy)
GW_EXPORT(gw_conns_started)
GW_EXPORT(gw_conns_stats)

/* fanout.h */
GW_EXPORT(gw_fanout_abandon)
GW_EXPORT(gw_fanout_close)
GW_EXPORT(gw_fanout_create)
GW_EXPORT(gw_fanout_destroy)
GW_EXPORT(gw_fanout_done)
GW_EXPORT(gw_fanout_each_lane)
GW_EXPORT(gw_fanout_finished)
GW_EXPORT(gw_fanout_groups)
GW_EXPORT(gw_fanout_park)
GW_EXPORT(gw_fanout_push)
GW_EXPORT(gw_fanout_set_idle)
GW_EXPORT(gw_fanout_stats)
GW_EXPORT(gw_fanout_take)

/* harness.h */
GW_EXPORT(gw_harness_close)
GW_EXPORT(gw_harness_open)
GW_EXPORT(gw_harness_run)
GW_EXPORT(gw_harness_set_req)

/* inflight.h */
GW_EXPORT(gw_inflight_cost)
GW_EXPORT(gw_inflight_create)
GW_EXPORT(gw_inflight_destroy)
GW_EXPORT(gw_inflight_ebbed)
GW_EXPORT(gw_inflight_fits)
GW_EXPORT(gw_inflight_keep)
GW_EXPORT(gw_inflight_stats)
GW_EXPORT(gw_inflight_take)

/* influx.h */
GW_EXPORT(gw_influx_create)
GW_EXPORT(gw_influx_destroy)
GW_EXPORT(gw_influx_write)

/* json.h */
GW_EXPORT(gw_json_member_string)
GW_EXPORT(gw_json_parse)

/* jsonw.h */
GW_EXPORT(gw_jsonw_begin_array)
GW_EXPORT(gw_jsonw_begin_object)
GW_EXPORT(gw_jsonw_bool)
GW_EXPORT(gw_jsonw_double)
GW_EXPORT(gw_jsonw_end)
GW_EXPORT(gw_jsonw_finish)
GW_EXPORT(gw_jsonw_init)
GW_EXPORT(gw_jsonw_int)
GW_EXPORT(gw_jsonw_key)
GW_EXPORT(gw_jsonw_key_n)
GW_EXPORT(gw_jsonw_member_bool)
GW_EXPORT(gw_jsonw_member_double)
GW_EXPORT(gw_jsonw_member_int)
GW_EXPORT(gw_jsonw_member_string)
GW_EXPORT(gw_jsonw_member_uint)
GW_EXPORT(gw_jsonw_null)
GW_EXPORT(gw_jsonw_raw)
GW_EXPORT(gw_jsonw_string)
GW_EXPORT(gw_jsonw_string_cut)
GW_EXPORT(gw_jsonw_string_n)
GW_EXPORT(gw_jsonw_uint)

/* lineproto.h */
GW_EXPORT(gw_lp_encode)
GW_EXPORT(gw_lp_parse)
GW_EXPORT(gw_lp_precision)

/* log.h */
GW_EXPORT(gw_log_limited)
GW_EXPORT(gw_log_set_level)

/* memo.h */
GW_EXPORT(gw_memo_stats)

/* metrics.h */
GW_EXPORT(gw_series_pin)
GW_EXPORT(gw_series_set_clock)
GW_EXPORT(gw_series_slot)

/* point.h */
GW_EXPORT(gw_points_free)

/* refusal.h */
GW_EXPORT(gw_refusal_partition)

/* route.h */
GW_EXPORT(gw_routes_begin)
GW_EXPORT(gw_routes_check)
GW_EXPORT(gw_routes_count)
GW_EXPORT(gw_routes_create)
GW_EXPORT(gw_routes_destroy)
GW_EXPORT(gw_routes_match)

/* script.h */
GW_EXPORT(gw_script_stats_free)
GW_EXPORT(gw_script_stats_snapshot)

/* sender.h */
GW_EXPORT(gw_delivery_budget)
GW_EXPORT(gw_delivery_classify)
GW_EXPORT(gw_delivery_run)

/* spool.h */
GW_EXPORT(gw_spool_ack)
GW_EXPORT(gw_spool_append)
GW_EXPORT(gw_spool_bytes)
GW_EXPORT(gw_spool_close)
GW_EXPORT(gw_spool_corrupt)
GW_EXPORT(gw_spool_destroy)
GW_EXPORT(gw_spool_open)
GW_EXPORT(gw_spool_points)
GW_EXPORT(gw_spool_read)
GW_EXPORT(gw_spool_unread)

/* tenant.h */
GW_EXPORT(gw_name_ok)
GW_EXPORT(gw_tenant_database)
GW_EXPORT(gw_tenant_tag)
GW_EXPORT(gw_tenants_check)
GW_EXPORT(gw_tenants_count)
GW_EXPORT(gw_tenants_create)
GW_EXPORT(gw_tenants_destroy)
GW_EXPORT(gw_tenants_find)
GW_EXPORT(gw_tenants_tree_has)

/* typecheck.h */
GW_EXPORT(gw_typecheck_create)
GW_EXPORT(gw_typecheck_destroy)
GW_EXPORT(gw_typecheck_point)
GW_EXPORT(gw_typecheck_reset)

/* utf8.h */
GW_EXPORT(gw_utf8_char)
GW_EXPORT(gw_utf8_echo)

#undef GW_EXPORT

#endif
