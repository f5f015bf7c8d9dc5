/* script_env.c — the C functions scripts reach, and the message handler
 * beneath every call (script_internal.h).
 *
 * The sandbox itself (which globals a script sees) is built in script.lua;
 * what needs C is here: log.* (one line with the script's file:line and
 * the series of the point in progress), os.date and os.time (as in Lua
 * 5.1, but with libc's locking parts — localtime, strftime, mktime — inside
 * the guard's critical sections, where the watchdog does not interrupt a
 * thread: script_guard.h), and the message handler, which keeps the error
 * and notes the innermost frame of a script file for the message.
 * Every function here gets the worker's gw_script_t as upvalue 1. */
#include "script_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#define SCRIPT_LOGS_PER_SEC 20 /* log.* lines per worker per second, evenly spread */

static gw_script_t *self_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* log.info/warn/error(msg): one line with the script and series, at most
 * SCRIPT_LOGS_PER_SEC per worker per second; the next line printed says
 * how many were left out. */
static int l_log(lua_State *L)
{
    gw_script_t *s = self_of(L);
    int level = (int)lua_tointeger(L, lua_upvalueindex(2));
    size_t n = 0;
    const char *msg = lua_tolstring(L, 1, &n);
    char where[160] = "?", series[128] = "", m[600];
    lua_Debug ar;

    if (!msg)
        msg = luaL_typename(L, 1), n = strlen(msg);
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar))
        snprintf(where, sizeof(where), "%s:%d", ar.source[0] == '@' ? ar.source + 1 : ar.short_src, ar.currentline);
    if (s->ctl.inp && s->ctl.cur < s->ctl.nin)
        gw_script_log_clean(series, sizeof(series), s->ctl.inp[s->ctl.cur].series.p,
                            s->ctl.inp[s->ctl.cur].series.n);
    gw_script_log_clean(m, sizeof(m), msg, n);
    gw_guard_crit_enter();
    gw_log_limited(&s->log_lim, 1.0 / SCRIPT_LOGS_PER_SEC, level, "script log", "script=%s series=\"%s\" text=\"%s\"",
                   where, series, m);
    gw_guard_crit_leave();
    if (gw_guard_stop_pending())
        return luaL_error(L, "timeout");
    return 0;
}

static void set_field_int(lua_State *L, const char *k, int v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static int get_field_int(lua_State *L, const char *k, int def)
{
    int v;
    lua_getfield(L, -1, k);
    if (lua_isnumber(L, -1))
        v = (int)lua_tointeger(L, -1);
    else if (def < 0)
        return luaL_error(L, "field '%s' missing in date table", k);
    else
        v = def;
    lua_pop(L, 1);
    return v;
}

/* os.date([format [, time]]) as in Lua 5.1, with the locking parts of libc
 * (localtime, strftime) inside a critical section. */
static int l_os_date(lua_State *L)
{
    const char *fmt = luaL_optstring(L, 1, "%c");
    time_t t = lua_isnoneornil(L, 2) ? time(NULL) : (time_t)luaL_checknumber(L, 2);
    struct tm tm, *ok;
    int utc = 0;

    if (*fmt == '!') {
        utc = 1;
        fmt++;
    }
    gw_guard_crit_enter();
    ok = utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm);
    gw_guard_crit_leave();
    if (!ok) {
        lua_pushnil(L);
        return 1;
    }
    if (strcmp(fmt, "*t") == 0) {
        lua_createtable(L, 0, 9);
        set_field_int(L, "sec", tm.tm_sec);
        set_field_int(L, "min", tm.tm_min);
        set_field_int(L, "hour", tm.tm_hour);
        set_field_int(L, "day", tm.tm_mday);
        set_field_int(L, "month", tm.tm_mon + 1);
        set_field_int(L, "year", tm.tm_year + 1900);
        set_field_int(L, "wday", tm.tm_wday + 1);
        set_field_int(L, "yday", tm.tm_yday + 1);
        if (tm.tm_isdst >= 0) {
            lua_pushboolean(L, tm.tm_isdst);
            lua_setfield(L, -2, "isdst");
        }
        return 1;
    }
    {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (; *fmt; fmt++) {
            char cc[3] = {'%', 0, 0}, buf[256];
            size_t n;
            if (*fmt != '%' || fmt[1] == '\0') {
                luaL_addchar(&b, *fmt);
                continue;
            }
            cc[1] = *++fmt;
            gw_guard_crit_enter();
            n = strftime(buf, sizeof(buf), cc, &tm);
            gw_guard_crit_leave();
            luaL_addlstring(&b, buf, n);
        }
        luaL_pushresult(&b);
    }
    return 1;
}

/* os.time([table]) as in Lua 5.1; mktime inside a critical section. */
static int l_os_time(lua_State *L)
{
    time_t t;
    if (lua_isnoneornil(L, 1)) {
        t = time(NULL);
    } else {
        struct tm tm;
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        memset(&tm, 0, sizeof(tm));
        tm.tm_sec = get_field_int(L, "sec", 0);
        tm.tm_min = get_field_int(L, "min", 0);
        tm.tm_hour = get_field_int(L, "hour", 12);
        tm.tm_mday = get_field_int(L, "day", -1);
        tm.tm_mon = get_field_int(L, "month", -1) - 1;
        tm.tm_year = get_field_int(L, "year", -1) - 1900;
        lua_getfield(L, -1, "isdst");
        tm.tm_isdst = lua_isnil(L, -1) ? -1 : lua_toboolean(L, -1);
        lua_pop(L, 1);
        gw_guard_crit_enter();
        t = mktime(&tm);
        gw_guard_crit_leave();
    }
    if (t == (time_t)-1)
        lua_pushnil(L);
    else
        lua_pushnumber(L, (lua_Number)t);
    return 1;
}

/* Message handler beneath every call: keep the message (a string, or what
 * kind of object was thrown) and remember the innermost script frame. */
static int l_msgh(lua_State *L)
{
    gw_script_t *s = self_of(L);
    lua_Debug ar;

    if (!lua_isstring(L, 1)) {
        lua_pushfstring(L, "error object is a %s value", luaL_typename(L, 1));
        lua_replace(L, 1);
    }
    if (!s->guard.where[0])
        for (int level = 1; level < 32 && lua_getstack(L, level, &ar); level++) {
            if (!lua_getinfo(L, "Sl", &ar) || ar.source[0] != '@' || ar.currentline <= 0 ||
                strcmp(ar.source, s->driver_src) == 0)
                continue;
            snprintf(s->guard.where, sizeof(s->guard.where), "%s:%d", ar.source + 1, ar.currentline);
            break;
        }
    lua_settop(L, 1);
    return 1;
}

void gw_script_env_push_msgh(lua_State *L, gw_script_t *s)
{
    lua_pushlightuserdata(L, s);
    lua_pushcclosure(L, l_msgh, 1);
}

void gw_script_env_push_c(lua_State *L, gw_script_t *s)
{
    static const struct {
        const char *name;
        lua_CFunction f;
        int level;
    } cfns[] = {
        {"log_info", l_log, GW_LOG_INFO},  {"log_warn", l_log, GW_LOG_WARN}, {"log_error", l_log, GW_LOG_ERROR},
        {"os_date", l_os_date, 0},         {"os_time", l_os_time, 0},
    };

    lua_createtable(L, 0, (int)(sizeof(cfns) / sizeof(cfns[0])));
    for (size_t i = 0; i < sizeof(cfns) / sizeof(cfns[0]); i++) {
        lua_pushlightuserdata(L, s);
        lua_pushinteger(L, cfns[i].level);
        lua_pushcclosure(L, cfns[i].f, 2);
        lua_setfield(L, -2, cfns[i].name);
    }
}
