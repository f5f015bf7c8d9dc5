/* status_page.c — gateway/status.html compiled in as gw_status_html
 * (status.h): the assembler includes the file's bytes, so the page needs no
 * generated source and no tool beyond the compiler. The Makefile makes this
 * object depend on the page. A NUL follows the bytes; the length leaves it
 * out. */
#include "status.h"

/* Relative to the directory the compiler runs in: the repository's root. */
#ifndef GW_STATUS_HTML_PATH
#define GW_STATUS_HTML_PATH "gateway/status.html"
#endif

__asm__(".section .rodata\n"
        ".balign 16\n"
        ".globl gw_status_html\n"
        ".type gw_status_html, @object\n"
        "gw_status_html:\n"
        ".incbin \"" GW_STATUS_HTML_PATH "\"\n"
        ".Lgw_status_html_end:\n"
        ".byte 0\n"
        ".size gw_status_html, . - gw_status_html\n"
        ".balign 8\n"
        ".globl gw_status_html_len\n"
        ".type gw_status_html_len, @object\n"
        "gw_status_html_len:\n"
        ".quad .Lgw_status_html_end - gw_status_html\n"
        ".size gw_status_html_len, 8\n"
        ".previous\n");
