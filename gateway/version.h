/* version.h — luagw's version, and the InfluxDB version it answers /ping
 * with (clients such as influxdb-python only read it for display). */
#ifndef GW_VERSION_H
#define GW_VERSION_H
#define GW_VERSION "0.1.0"
#define GW_INFLUX_COMPAT_VERSION "1.8.10"
#endif
