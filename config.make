# nginx compiles .cpp with $(CC) $(CFLAGS) and has no CXXFLAGS: add the C++-only
# flags per object (objects live at objs/addon/<leaf dir>/<file>.o), never to
# CFLAGS, where they would break every C file (STYLE.md P4).
for pulse_src in $PULSE_CXX_SRCS; do
    pulse_dir=`dirname $pulse_src`
    pulse_obj="$NGX_OBJS/addon/`basename $pulse_dir`/`basename $pulse_src .cpp`.o"
    echo "$pulse_obj: CFLAGS += -std=c++17 -fvisibility=hidden -fvisibility-inlines-hidden" \
        >> $NGX_MAKEFILE
done
