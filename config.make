# nginx compiles .cpp with $(CC) $(CFLAGS) and has no CXXFLAGS: add the C++-only
# flags per object (objects live at objs/addon/<leaf dir>/<file>.o), never to
# CFLAGS, where they would break every C file (docs/conventions.md §4).
# -O2: nginx's own default is -O when configure gets no --with-cc-opt,
# which leaves even std::string_view's members out of line; Debian builds
# nginx and its modules with -O2.
for pulse_src in $PULSE_CXX_SRCS; do
    pulse_dir=`dirname $pulse_src`
    pulse_obj="$NGX_OBJS/addon/`basename $pulse_dir`/`basename $pulse_src .cpp`.o"
    echo "$pulse_obj: CFLAGS += -std=c++17 -O2 -fvisibility=hidden -fvisibility-inlines-hidden -DPULSE_VERSION='\"$PULSE_VERSION\"'" \
        >> $NGX_MAKEFILE
done
