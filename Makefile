# Pulse: developer and CI entry point. Plain GNU make.
#   make            build the module, the core library and the sidecar
#   make test       unit tests (ASan+UBSan) then integration tests
#   make demo       the live demo (see README.md)
#   make deb        Debian packages into build/deb/ (docs/install.md)
#   make package-test  installs, runs and purges them (root; t/package)
#   make install    PREFIX, DESTDIR: the module, the sidecar, its unit

SHELL       := /bin/bash
CURDIR_Q    := $(CURDIR)
BUILD       := $(CURDIR)/build
NGX_SRC     := /usr/share/nginx/src
NGINX       ?= /usr/sbin/nginx
PYTHON      ?= /usr/bin/python3
CXX         ?= g++
JOBS        ?= $(shell nproc)
# Our own objects build in parallel by default.
MAKEFLAGS   += -j$(JOBS)

DEBS := nginx nginx-dev libnginx-mod-nchan redis-server libhiredis-dev \
        libyaml-cpp-dev libgtest-dev libgmock-dev libssl-dev zlib1g-dev \
        libpcre3-dev g++ make curl python3-pytest python3-requests \
        python3-aiohttp python3-websocket python3-websockets python3-wsproto \
        python3-redis python3-jinja2 nlohmann-json3-dev clang \
        libclang-rt-14-dev clang-format clang-tidy iproute2 procps openssl \
        python3-pyflakes python3-jwt python3-cryptography \
        python3-prometheus-client libsystemd-dev pkgconf systemd \
        dpkg-dev debhelper fakeroot lintian chromium

# The one version, Debian's changelog's (the packages carry it, the stub
# status and `pulse-publisher --version` print it).
PULSE_VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
ifeq ($(PULSE_VERSION),)
$(error no version in debian/changelog)
endif
# sd_notify readiness for the systemd unit; PULSE_SYSTEMD=0 builds without
# libsystemd (then use Type=simple).
PULSE_SYSTEMD ?= 1
ifeq ($(PULSE_SYSTEMD),1)
SYSTEMD_DEFS := -DPULSE_HAVE_SYSTEMD
SYSTEMD_LIBS := -lsystemd
endif

STRICT   := -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wold-style-cast \
            -Wnon-virtual-dtor -Werror -g -fno-omit-frame-pointer
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all

LIB_SRCS   := $(wildcard lib/pulse/*.cpp)
LIB_HDRS   := $(wildcard lib/pulse/*.h)
GLUE_SRCS  := $(wildcard ngx_module/*.cpp ngx_module/*.h)
PUB_SRCS   := $(filter-out publisher/main.cpp,$(wildcard publisher/*.cpp))
PUB_HDRS   := $(wildcard publisher/*.h)
ULIB_TESTS := $(wildcard t/unit/lib/*_test.cpp)
UPUB_TESTS := $(wildcard t/unit/publisher/*_test.cpp)
MIG_SRCS   := $(filter-out migrate/main.cpp,$(wildcard migrate/*.cpp))
UMIG_TESTS := $(wildcard t/unit/migrate/*_test.cpp)

MODULE_SO  := $(BUILD)/ngx_http_pulse_module.so
PUBLISHER  := $(BUILD)/pulse-publisher
MIGRATE    := $(BUILD)/pulse-migrate

.PHONY: all deps module publisher migrate unit itest test asan asan-module nginx-t \
        format format-check tidy style-check clean bench bench-quick demo fuzz \
        bench-deps deb package-test install install-module install-publisher \
        js-deps js-test demo-ui

all: module publisher migrate

# ---------------------------------------------------------------- deps
# Installs only what is missing, so it is cheap to call from every target.
# PULSE_NO_DEPS=1 (package builds: Build-Depends has them) installs nothing.
deps: $(BUILD)/.deps
$(BUILD)/.deps: Makefile
	@[ "$(PULSE_NO_DEPS)" = 1 ] || { missing=""; for p in $(DEBS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' \
	        || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "deps: installing$$missing"; \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	        --no-install-recommends $$missing >/dev/null || exit 1; \
	fi; }
	@mkdir -p $(BUILD) && touch $@

# ---------------------------------------------------------------- module
# Configured with Debian's exact flags so the .so loads into /usr/sbin/nginx.
NGX_CC_OPT ?=
NGX_LD_OPT ?=
NGX_DIR    ?= $(BUILD)/ngx

# configure runs again when `config` changes or a source is added or removed
# (config lists them with globs).
SRC_LIST := $(sort $(LIB_SRCS) $(wildcard ngx_module/*.cpp))
module: $(MODULE_SO)
$(MODULE_SO): config config.make debian/changelog $(LIB_SRCS) $(LIB_HDRS) \
              $(GLUE_SRCS) | $(BUILD)/.deps
	@if [ ! -f $(NGX_DIR)/objs/Makefile ] || [ config -nt $(NGX_DIR)/objs/Makefile ] \
	    || [ config.make -nt $(NGX_DIR)/objs/Makefile ] \
	    || [ debian/changelog -nt $(NGX_DIR)/objs/Makefile ] \
	    || [ "$$(cat $(NGX_DIR)/.srcs 2>/dev/null)" != "$(SRC_LIST)" ]; then \
	    rm -rf $(NGX_DIR) && mkdir -p $(NGX_DIR) && cp -a $(NGX_SRC)/. $(NGX_DIR)/ && \
	    cd $(NGX_DIR) && bash -c 'source ./conf_flags && ./configure \
	        "$${NGX_CONF_FLAGS[@]}" --with-cc-opt="$(NGX_CC_OPT)" \
	        --with-ld-opt="$(NGX_LD_OPT)" --add-dynamic-module=$(CURDIR_Q)' \
	        > $(NGX_DIR)/configure.log 2>&1 \
	        || { tail -30 $(NGX_DIR)/configure.log; exit 1; }; \
	    echo "$(SRC_LIST)" > $(NGX_DIR)/.srcs; \
	fi
	$(MAKE) -s -C $(NGX_DIR) -f objs/Makefile -j$(JOBS) modules
	@# a rename, never a write into the file a running nginx has mapped
	mkdir -p $(dir $@) && cp $(NGX_DIR)/objs/ngx_http_pulse_module.so $@.tmp \
	    && mv -f $@.tmp $@

nginx-t: $(MODULE_SO)
	@tmp=$$(mktemp -d) && mkdir -p $$tmp/logs && \
	sed "s#@MODULE@#$(MODULE_SO)#; s#@PREFIX@#$$tmp#; s#@ROOT@#$(CURDIR)#" conf.d/nginx-t.conf.in \
	    > $$tmp/nginx.conf && \
	$(NGINX) -t -q -p $$tmp -c $$tmp/nginx.conf -e $$tmp/logs/error.log && \
	echo "nginx-t: conf.d/pulse.conf.example loads with the built module" && \
	rm -rf $$tmp

# ------------------------------------------------------- our C++ builds
# One object per source, compiled in parallel and again only when the
# source or a header it includes changes (-MMD). `rel` objects build the
# sidecar; `san` objects (ASan+UBSan) the unit tests. CPPFLAGS, CXXFLAGS
# and LDFLAGS from the environment apply to the sidecar (dpkg-buildflags'
# hardening in the package build).
OBJ := $(BUILD)/obj
INCLUDES := -Ilib -Ipublisher -Imigrate -It/unit
DEFS := -DPULSE_VERSION='"$(PULSE_VERSION)"' $(SYSTEMD_DEFS)
$(OBJ)/rel/%.o: %.cpp | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	@$(CXX) -std=c++17 -O2 $(STRICT) $(DEFS) $(INCLUDES) $(CPPFLAGS) \
	    $(CXXFLAGS) -MMD -MP -c $< -o $@
$(OBJ)/san/%.o: %.cpp | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	@echo "  CXX san $<"
	@$(CXX) -std=c++17 -O1 $(STRICT) $(SANITIZE) $(DEFS) $(INCLUDES) \
	    -MMD -MP -c $< -o $@
-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
rel = $(patsubst %.cpp,$(OBJ)/rel/%.o,$(1))
san = $(patsubst %.cpp,$(OBJ)/san/%.o,$(1))

# ---------------------------------------------------------------- sidecar
# The sidecar links only the parts of lib/ it uses.
PUB_LIB_SRCS := lib/pulse/message_id.cpp lib/pulse/publish_request.cpp
publisher: $(PUBLISHER)
$(PUBLISHER): $(call rel,publisher/main.cpp $(PUB_SRCS) $(PUB_LIB_SRCS))
	$(CXX) $(LDFLAGS) $^ -lhiredis -lyaml-cpp $(SYSTEMD_LIBS) -o $@.tmp \
	    && mv -f $@.tmp $@
# the version is compiled in
$(OBJ)/rel/publisher/main.o: debian/changelog

# ---------------------------------------------------------------- migrate
# pulse-migrate: nchan config -> Pulse config (docs/migrating-from-nchan.md)
MIG_LIB_SRCS := lib/pulse/nchan_directives.cpp
migrate: $(MIGRATE)
$(MIGRATE): $(call rel,migrate/main.cpp $(MIG_SRCS) $(MIG_LIB_SRCS))
	$(CXX) $(LDFLAGS) $^ -o $@.tmp && mv -f $@.tmp $@

# ---------------------------------------------------------------- tests
$(BUILD)/unit_lib: $(call san,$(ULIB_TESTS) $(LIB_SRCS))
	$(CXX) $(SANITIZE) $^ -lgtest_main -lgtest -lcrypto -lz -pthread -o $@

$(BUILD)/unit_publisher: $(call san,$(UPUB_TESTS) $(PUB_SRCS) $(PUB_LIB_SRCS))
	$(CXX) $(SANITIZE) $^ -lhiredis -lyaml-cpp \
	    -lgtest_main -lgtest -pthread -o $@

$(BUILD)/unit_migrate: $(call san,$(UMIG_TESTS) $(MIG_SRCS) $(MIG_LIB_SRCS))
	$(CXX) $(SANITIZE) $^ -lgtest_main -lgtest -pthread -o $@

unit: $(BUILD)/unit_lib $(BUILD)/unit_publisher $(BUILD)/unit_migrate
	$(BUILD)/unit_lib --gtest_brief=1
	$(BUILD)/unit_publisher --gtest_brief=1
	$(BUILD)/unit_migrate --gtest_brief=1

# ---------------------------------------------------------------- pulse.js
# One npm workspace (package.json): clients/js, clients/react, demo/ui.
# npm's registry only; the browser is Debian's chromium (playwright-core
# never downloads one).
js-deps: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json clients/js/package.json \
                                 clients/react/package.json demo/ui/package.json | $(BUILD)/.deps
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' 2>/dev/null \
	    || { echo "pulse.js needs Node.js 20 or later with npm (node: $$(node --version 2>&1))"; exit 1; }
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	@touch $@
# Unit tests (fake transports, fake clock), the .d.ts files under tsc, the
# minified+gzipped size budget.
js-test: js-deps
	npm test --silent -w clients/js
	npm run --silent typecheck -w clients/js -w clients/react
	npm run --silent size -w clients/js

# The dashboard of `make demo`, bundled by esbuild into build/demo-www.
DEMO_UI_SRCS := $(wildcard demo/ui/src/*) demo/ui/build.mjs clients/js/src/pulse.js \
                clients/react/src/index.js
demo-ui: $(BUILD)/demo-www/app.js
$(BUILD)/demo-www/app.js: $(DEMO_UI_SRCS) | js-deps
	node demo/ui/build.mjs

PYTEST_ARGS ?=
itest: $(MODULE_SO) $(PUBLISHER) $(MIGRATE) nginx-t $(BUILD)/loadgen $(BUILD)/floor js-deps \
       demo-ui
	cd t/integration && $(PYTHON) -m pytest -q -p no:cacheprovider \
	    --nginx=$(NGINX) --module=$(MODULE_SO) --publisher=$(PUBLISHER) \
	    --migrate=$(MIGRATE) $(PYTEST_ARGS)

test: unit js-test itest

# The module built with ASan+UBSan, loaded into Debian's nginx with the
# runtimes preloaded (docs/conventions.md §4); teardown greps error logs for reports.
ASAN_DIR := $(BUILD)/ngx-asan
asan: $(BUILD)/loadgen $(BUILD)/floor js-deps demo-ui
	$(MAKE) module NGX_DIR=$(ASAN_DIR) MODULE_SO=$(BUILD)/asan/ngx_http_pulse_module.so \
	    NGX_CC_OPT="-fsanitize=address,undefined -fno-omit-frame-pointer" \
	    NGX_LD_OPT="-fsanitize=address,undefined"
	$(MAKE) publisher migrate
	cd t/integration && $(PYTHON) -m pytest -q -p no:cacheprovider \
	    --nginx=$(NGINX) --module=$(BUILD)/asan/ngx_http_pulse_module.so \
	    --publisher=$(PUBLISHER) \
	    --preload="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libubsan.so)" \
	    $(PYTEST_ARGS)

# ---------------------------------------------------------------- style
STYLE_DIRS := ngx_module lib publisher migrate t/unit t/fuzz
format:
	clang-format -i $$(find $(STYLE_DIRS) -name '*.cpp' -o -name '*.h')
format-check: $(BUILD)/.deps
	clang-format --dry-run --Werror $$(find $(STYLE_DIRS) -name '*.cpp' -o -name '*.h')
style-check:
	@! grep -rnP '\t' ngx_module lib publisher migrate --include='*.cpp' --include='*.h' \
	    || { echo "style: tabs found"; exit 1; }
	@! grep -rnE '^.{81,}$$' ngx_module lib publisher migrate --include='*.cpp' --include='*.h' \
	    || { echo "style: lines over 80 columns"; exit 1; }
	$(PYTHON) -m pyflakes t/integration bench demo
# The glue with its own .clang-tidy (ngx_module/), nginx's headers as system
# headers: bugprone-exception-escape and cert-err58-cpp over every callback.
NGX_TIDY_INC := -isystem $(NGX_DIR)/objs $(patsubst %,-isystem $(NGX_SRC)/src/%,\
                core event event/modules os/unix http http/modules http/v2)
tidy: $(BUILD)/.deps $(MODULE_SO)
	clang-tidy --quiet $(LIB_SRCS) $(PUB_SRCS) publisher/main.cpp \
	    $(MIG_SRCS) migrate/main.cpp -- -std=c++17 -Ilib -Ipublisher \
	    -Imigrate $(DEFS)
	clang-tidy --quiet $(wildcard ngx_module/*.cpp) -- \
	    -std=c++17 -Ilib -Ingx_module $(NGX_TIDY_INC) $(DEFS)

# ---------------------------------------------------------------- fuzz
# libFuzzer targets, each with its seed corpus in t/fuzz/corpus/<target>:
#   ws_frame        the WebSocket frame parser, the inflater, pulse.v1
#   v1_request      pulse.v1 requests (deeply nested seeds) and the frames
#                   built from them
#   publish_fields  the publish-time field rule and every encoder: no
#                   forged line in any output
#   jwt             token verification (nothing unsigned accepted) and ACL
#                   patterns against a reference matcher
#   nginx_conf      pulse-migrate's parser and rewrite: what parses is
#                   rewritten into a config that parses, with no nchan_ left
# FUZZ_SECONDS bounds each target's run (CI uses a short one).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := ws_frame v1_request publish_fields jwt nginx_conf
FUZZ_CXX := clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined \
            -fno-sanitize-recover=all -Ilib
FUZZ_LIB := $(LIB_SRCS)
$(BUILD)/%_fuzz: t/fuzz/%_fuzz.cpp $(FUZZ_LIB) $(LIB_HDRS) | $(BUILD)/.deps
	$(FUZZ_CXX) $< $(FUZZ_LIB) -lcrypto -lz -o $@
$(BUILD)/nginx_conf_fuzz: t/fuzz/nginx_conf_fuzz.cpp $(MIG_SRCS) $(MIG_LIB_SRCS) \
                          $(wildcard migrate/*.h) | $(BUILD)/.deps
	$(FUZZ_CXX) -Imigrate $< $(MIG_SRCS) $(MIG_LIB_SRCS) -o $@
fuzz: $(patsubst %,$(BUILD)/%_fuzz,$(FUZZ_TARGETS))
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(BUILD)/fuzz-corpus/$$t; \
	    cp -n t/fuzz/corpus/$$t/* $(BUILD)/fuzz-corpus/$$t/; \
	    echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	    $(BUILD)/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=262144 \
	        -print_final_stats=1 $(BUILD)/fuzz-corpus/$$t t/fuzz/corpus/$$t \
	        > $(BUILD)/fuzz-$$t.log 2>&1 \
	        || { tail -40 $(BUILD)/fuzz-$$t.log; exit 1; }; \
	    grep -E '^stat::number_of_executed_units|^Done' $(BUILD)/fuzz-$$t.log; \
	done

# ---------------------------------------------------------------- bench, demo
$(BUILD)/loadgen: bench/loadgen.cpp | $(BUILD)/.deps
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Werror -o $@ bench/loadgen.cpp
$(BUILD)/floor: bench/floor.cpp | $(BUILD)/.deps
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Werror -o $@ bench/floor.cpp
BENCH_DEBS := python3-matplotlib
bench-deps:
	@dpkg-query -W -f='$${Status}' $(BENCH_DEBS) 2>/dev/null | grep -q 'ok installed' \
	    || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	         DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	         --no-install-recommends $(BENCH_DEBS) >/dev/null; }
bench: all $(BUILD)/loadgen $(BUILD)/floor bench-deps demo-ui
	$(PYTHON) bench/run.py --module=$(MODULE_SO) --nginx=$(NGINX)
	$(PYTHON) bench/dashboard.py --module=$(MODULE_SO) --nginx=$(NGINX) --publisher=$(PUBLISHER)
bench-quick: all $(BUILD)/loadgen $(BUILD)/floor bench-deps
	$(PYTHON) bench/run.py --quick --module=$(MODULE_SO) --nginx=$(NGINX)

demo: all demo-ui
	$(PYTHON) demo/run.py --module=$(MODULE_SO) --nginx=$(NGINX) \
	    --publisher=$(PUBLISHER)

# ---------------------------------------------------------------- packages
# `make deb`: both packages from a copy of this tree (so nothing of build/
# goes in), by dpkg-buildpackage; the .debs land in build/deb/.
DEB_DIR := $(BUILD)/deb
deb: | $(BUILD)/.deps
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/pulse-$(PULSE_VERSION)
	tar -C $(CURDIR) --exclude=./build --exclude=./.git -cf - . \
	    | tar -C $(DEB_DIR)/pulse-$(PULSE_VERSION) -xf -
	cd $(DEB_DIR)/pulse-$(PULSE_VERSION) && dpkg-buildpackage -us -uc -b \
	    > $(DEB_DIR)/build.log 2>&1 || { tail -40 $(DEB_DIR)/build.log; exit 1; }
	rm -rf $(DEB_DIR)/pulse-$(PULSE_VERSION)
	@ls $(DEB_DIR)/*.deb

# Installs the packages on this machine, runs them, purges them: root, and
# the example ports free (t/package/smoke.sh says which).
package-test: deb
	bash t/package/smoke.sh

# `make install`: for systems without the packages. The module goes next
# to nginx's other modules (load it with load_module, docs/install.md);
# an existing publisher.yaml is kept.
PREFIX         ?= /usr/local
BINDIR         ?= $(PREFIX)/bin
SYSCONFDIR     ?= $(PREFIX)/etc
NGX_MODULES_DIR ?= $(PREFIX)/lib/nginx/modules
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR         ?= $(PREFIX)/share/doc/pulse
install: install-module install-publisher
install-module: $(MODULE_SO)
	install -D -m 0644 $(MODULE_SO) \
	    $(DESTDIR)$(NGX_MODULES_DIR)/ngx_http_pulse_module.so
	install -D -m 0644 conf.d/pulse.conf.example \
	    $(DESTDIR)$(DOCDIR)/examples/pulse.conf.example
	install -D -m 0644 conf.d/pulse-proxy.conf.example \
	    $(DESTDIR)$(DOCDIR)/examples/pulse-proxy.conf.example
	install -D -m 0644 conf.d/pulse-ingest.conf.example \
	    $(DESTDIR)$(DOCDIR)/examples/pulse-ingest.conf.example
	@echo "install: add to nginx.conf: load_module" \
	    "$(NGX_MODULES_DIR)/ngx_http_pulse_module.so;"
install-publisher: $(PUBLISHER) $(MIGRATE)
	install -D -m 0755 $(PUBLISHER) $(DESTDIR)$(BINDIR)/pulse-publisher
	install -D -m 0755 $(MIGRATE) $(DESTDIR)$(BINDIR)/pulse-migrate
	install -D -m 0644 publisher/pulse-publisher.1 \
	    $(DESTDIR)$(PREFIX)/share/man/man1/pulse-publisher.1
	install -D -m 0644 migrate/pulse-migrate.1 \
	    $(DESTDIR)$(PREFIX)/share/man/man1/pulse-migrate.1
	install -D -m 0644 conf.d/publisher-ingest.yaml.example \
	    $(DESTDIR)$(DOCDIR)/examples/publisher-ingest.yaml.example
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/pulse-publisher/publisher.yaml ]; then \
	    echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/pulse-publisher/publisher.yaml"; \
	else install -D -m 0644 conf.d/publisher.yaml.example \
	    $(DESTDIR)$(SYSCONFDIR)/pulse-publisher/publisher.yaml; fi
	mkdir -p $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's#@BINDIR@#$(BINDIR)#g; s#@SYSCONFDIR@#$(SYSCONFDIR)#g' \
	    conf.d/pulse-publisher.service.in \
	    > $(DESTDIR)$(SYSTEMDUNITDIR)/pulse-publisher.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/pulse-publisher.service

clean:
	rm -rf $(BUILD)
