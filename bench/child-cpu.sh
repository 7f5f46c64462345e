# Sourced by the bench scripts (bash).
#
# child_cpu FILE: the user + sys milliseconds of every child waited for so
# far (the runtime, its init, the container), from bash's `times`, into
# REPLY. No command substitution: its fork would be counted. FILE is
# scratch space for `times`' output.
child_cpu() {
    local self u s t m sec
    times > "$1"
    { read -r self; read -r u s; } < "$1"
    REPLY=0
    for t in "$u" "$s"; do
        m=${t%%m*} sec=${t#*m}
        sec=${sec%s}
        REPLY=$((REPLY + 10#$m * 60000 + 10#${sec/./}))
    done
}
