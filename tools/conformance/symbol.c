/* Name the callbacks in a leak report.  The core names a leaked handle's
 * callback by its dynamic symbol, which a plugin built with
 * -fvisibility=hidden does not export ("timer callback 0x7f…"); the
 * plugin file's own symbol table (.symtab, kept unless stripped) still
 * has the static function's name, so look it up there. */
#include <dlfcn.h>
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

#define SYM_FILE_MAX (64u << 20)

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && (size_t)n <= SYM_FILE_MAX &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) != NULL &&
	    fread(buf, 1, (size_t)n, f) == (size_t)n) {
		*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* The FUNC symbol of a 64-bit ELF file holding offset off; 0 or -1. */
static int
elf_func_at(const char *img, size_t len, uint64_t off, char *out, size_t outlen)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(const void *)img;
	const Elf64_Shdr *sh;

	if (len < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_shentsize != sizeof *sh ||
	    eh->e_shoff > len || (len - eh->e_shoff) / sizeof *sh < eh->e_shnum)
		return -1;
	sh = (const Elf64_Shdr *)(const void *)(img + eh->e_shoff);
	for (int pass = 0; pass < 2; pass++) {
		uint32_t want = pass == 0 ? SHT_SYMTAB : SHT_DYNSYM;
		for (size_t i = 0; i < eh->e_shnum; i++) {
			const Elf64_Shdr *s = &sh[i], *st;
			const Elf64_Sym *sym;
			size_t n;

			if (s->sh_type != want || s->sh_link >= eh->e_shnum || s->sh_offset > len ||
			    s->sh_size > len - s->sh_offset)
				continue;
			st = &sh[s->sh_link];
			if (st->sh_offset > len || st->sh_size > len - st->sh_offset)
				continue;
			sym = (const Elf64_Sym *)(const void *)(img + s->sh_offset);
			n = s->sh_size / sizeof *sym;
			for (size_t k = 0; k < n; k++) {
				if (ELF64_ST_TYPE(sym[k].st_info) != STT_FUNC ||
				    sym[k].st_name >= st->sh_size || off < sym[k].st_value ||
				    off >= sym[k].st_value + sym[k].st_size)
					continue;
				snprintf(out, outlen, "%.*s", (int)(st->sh_size - sym[k].st_name),
				         img + st->sh_offset + sym[k].st_name);
				return 0;
			}
		}
	}
	return -1;
}

/* "0x7f…" → "name (runtime-x.so+0x170f)"; the address unchanged when
 * nothing is known of it. */
static void
name_addr(uintptr_t a, char *out, size_t outlen)
{
	Dl_info di, pi;
	char name[128] = "", real[4096];
	const char *base;
	ssize_t rl;
	size_t len = 0;
	char *img;
	uint64_t off;

	if (dladdr((void *)a, &di) == 0 || di.dli_fname == NULL) {
		snprintf(out, outlen, "0x%jx", (uintmax_t)a);
		return;
	}
	off = (uint64_t)(a - (uintptr_t)di.dli_fbase);
	/* The loader dlopens the file it checked through /proc/self/fd/N,
	 * which may be closed by now: the plugin under test is known by its
	 * load address. */
	base = di.dli_fname;
	if (dladdr((const void *)g_plugin->info, &pi) != 0 && pi.dli_fbase == di.dli_fbase) {
		base = g_plugin->path;
	} else if ((rl = readlink(di.dli_fname, real, sizeof real - 1)) > 0) {
		real[rl] = '\0';
		base = real;
	}
	if ((img = read_file(base, &len)) != NULL) {
		elf_func_at(img, len, off, name, sizeof name);
		free(img);
	}
	base = strrchr(base, '/') ? strrchr(base, '/') + 1 : base;
	if (name[0])
		snprintf(out, outlen, "%s (%.160s+0x%jx)", name, base, (uintmax_t)off);
	else
		snprintf(out, outlen, "%.160s+0x%jx", base, (uintmax_t)off);
}

/* "FILE+0xOFF", as the core writes a callback it has no dynamic symbol
 * for (FILE may be the loader's /proc/self/fd/N): leaks are on the
 * plugin's own ctx, so the offset is into the plugin under test. */
static void
name_off(const char *file, size_t flen, uint64_t off, char *out, size_t outlen)
{
	const char *path = g_plugin->path;
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	bool fd = strspn(file, "0123456789") == flen;
	char name[128] = "";
	size_t len = 0;
	char *img;

	if (fd || (strlen(base) == flen && memcmp(file, base, flen) == 0)) {
		if ((img = read_file(path, &len)) != NULL) {
			elf_func_at(img, len, off, name, sizeof name);
			free(img);
		}
	} else {
		base = NULL;
	}
	if (name[0])
		snprintf(out, outlen, "%s (%.160s+0x%jx)", name, base, (uintmax_t)off);
	else
		snprintf(out, outlen, "%.*s+0x%jx", (int)(flen > 160 ? 160 : flen),
		         base ? base : file, (uintmax_t)off);
}

void
conf_symbolize(char *text, size_t len)
{
	char out[4096];
	size_t o = 0;

	for (const char *p = text; *p && o + 1 < sizeof out;) {
		if (p == text || p[-1] == ' ') {
			size_t w = strcspn(p, " ;\n");
			const char *plus = memchr(p, '+', w);
			const char *hex = plus ? plus + 1 : p;
			char *end, one[300];
			uint64_t v;

			if (hex[0] == '0' && hex[1] == 'x') {
				v = strtoull(hex + 2, &end, 16);
				if (end == p + w && end > hex + 2) {
					if (plus)
						name_off(p, (size_t)(plus - p), v, one, sizeof one);
					else
						name_addr((uintptr_t)v, one, sizeof one);
					o += (size_t)snprintf(out + o, sizeof out - o, "%s", one);
					if (o >= sizeof out)
						o = sizeof out - 1;
					p = end;
					continue;
				}
			}
		}
		out[o++] = *p++;
	}
	out[o] = '\0';
	snprintf(text, len, "%s", out);
}
