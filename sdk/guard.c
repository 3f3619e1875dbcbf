/* The re-entrancy guard: the core may stop() or destroy() an instance
 * inside any callback the plugin calls; frames below find out here. */
#include "rdhpf/sdk.h"

void
rsdk_guard_enter(struct rsdk_guard *g)
{
	g->depth++;
}

int
rsdk_guard_leave(struct rsdk_guard *g)
{
	if (g->depth > 0)
		g->depth--;
	return g->depth == 0 && g->dead;
}

void
rsdk_guard_bump(struct rsdk_guard *g)
{
	g->gen++;
}

int
rsdk_guard_destroy(struct rsdk_guard *g)
{
	g->dead = 1;
	g->gen++;
	return g->depth == 0;
}

int
rsdk_guard_alive(const struct rsdk_guard *g, uint64_t gen)
{
	return !g->dead && g->gen == gen;
}
