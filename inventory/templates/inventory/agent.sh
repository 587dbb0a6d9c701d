#!/bin/sh
# dcportal auto-inventory agent.
#
# Reads what this machine is (SMBIOS identity, CPUs, memory, disks, network interfaces) from
# /sys and /proc and reports it to the portal, which creates or updates the server.
# Plain POSIX sh: runs in a minimal installer or initramfs with busybox alone (sh, cat, sed,
# tr, grep, head, sort, wc, mktemp, wget). curl, dmidecode and timeout are used when present.
#
# Usage:  wget -qO- https://portal.example/inventory/agent.sh | sh -s -- --token dce_...
#         sh agent.sh [options]
#
# Options (each also from the environment, or from the kernel command line):
#   --url URL         portal base URL, or the full register URL      DCPORTAL_URL    dcportal.url=
#   --token KEY       enrolment token (dce_...) or API token (dcp_...) DCPORTAL_TOKEN dcportal.token=
#   --tenant SLUG     tenant, for a user's API token only            DCPORTAL_TENANT dcportal.tenant=
#   --hostname NAME   host name to register (default: portal generates one)       dcportal.hostname=
#   --dry-run         print the report (JSON) and send nothing
#   --client NAME     wget or curl (default: curl if installed, else wget)
#   --timeout SEC     per attempt (default 30)       --retries N    attempts (default 3)
#   --insecure        do not verify the portal's TLS certificate
#   --sysfs DIR --procfs DIR   read another /sys and /proc (tests, mounted images)
#
# Exit status: 0 reported (the answer is printed; a report held for an operator says so on
# stderr), 1 the portal refused the report or could not be reached, 2 bad usage.
# The token is sent in a header, never in the report. curl reads it from a private file; wget
# has it on its command line while it runs, and a token on the kernel command line can be read
# by anyone on the machine: use enrolment tokens (register only, one tenant, revocable).

AGENT_VERSION=1
PORTAL_REGISTER_URL=""  # filled in by the portal when it serves this script

LC_ALL=C
export LC_ALL
umask 077

say() { printf 'dcportal-agent: %s\n' "$*" >&2; }
die() {
    code=$1
    shift
    say "$*"
    exit "$code"
}

usage() {
    cat <<'EOF'
Usage: agent.sh [options]   (or: wget -qO- PORTAL/inventory/agent.sh | sh -s -- [options])
Reports this machine's identity, CPUs, memory, disks and NICs to dcportal.
  --url URL         portal base URL or register URL   (DCPORTAL_URL, dcportal.url=)
  --token KEY       enrolment token dce_... or API token dcp_...
                                                      (DCPORTAL_TOKEN, dcportal.token=)
  --tenant SLUG     tenant, for a user's API token    (DCPORTAL_TENANT, dcportal.tenant=)
  --hostname NAME   host name to register             (DCPORTAL_HOSTNAME, dcportal.hostname=)
  --dry-run         print the report and send nothing
  --client NAME     wget or curl (default: curl if installed, else wget)
  --timeout SEC     seconds per attempt (30)    --retries N   attempts (3)
  --insecure        do not verify the portal's TLS certificate
  --sysfs DIR, --procfs DIR   read another /sys and /proc
Exit status: 0 reported, 1 refused or unreachable, 2 bad usage.
EOF
}

# Arguments --------------------------------------------------------------------------------------

url=${DCPORTAL_URL:-}
token=${DCPORTAL_TOKEN:-}
tenant=${DCPORTAL_TENANT:-}
hostname_arg=${DCPORTAL_HOSTNAME:-}
client=${DCPORTAL_CLIENT:-}
dry_run=0
insecure=0
timeout_s=30
retries=3
SYS=/sys
PROC=/proc

need_value() { [ "$2" -ge 2 ] || die 2 "$1 needs a value (try --help)"; }

while [ $# -gt 0 ]; do
    case $1 in
        --url) need_value "$1" $#; url=$2; shift 2 ;;
        --url=*) url=${1#*=}; shift ;;
        --token) need_value "$1" $#; token=$2; shift 2 ;;
        --token=*) token=${1#*=}; shift ;;
        --tenant) need_value "$1" $#; tenant=$2; shift 2 ;;
        --tenant=*) tenant=${1#*=}; shift ;;
        --hostname) need_value "$1" $#; hostname_arg=$2; shift 2 ;;
        --hostname=*) hostname_arg=${1#*=}; shift ;;
        --client) need_value "$1" $#; client=$2; shift 2 ;;
        --client=*) client=${1#*=}; shift ;;
        --timeout) need_value "$1" $#; timeout_s=$2; shift 2 ;;
        --timeout=*) timeout_s=${1#*=}; shift ;;
        --retries) need_value "$1" $#; retries=$2; shift 2 ;;
        --retries=*) retries=${1#*=}; shift ;;
        --sysfs) need_value "$1" $#; SYS=$2; shift 2 ;;
        --sysfs=*) SYS=${1#*=}; shift ;;
        --procfs) need_value "$1" $#; PROC=$2; shift 2 ;;
        --procfs=*) PROC=${1#*=}; shift ;;
        --dry-run) dry_run=1; shift ;;
        --insecure) insecure=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die 2 "unknown argument: $1 (try --help)" ;;
    esac
done

is_number() {
    case $1 in '' | *[!0-9]*) return 1 ;; esac
    return 0
}
is_number "$timeout_s" && [ "$timeout_s" -gt 0 ] || die 2 "--timeout needs a number of seconds"
is_number "$retries" && [ "$retries" -gt 0 ] || die 2 "--retries needs a positive number"

# The value of key=... on the kernel command line (the last one wins), or nothing.
cmdline_value() {
    [ -r "$PROC/cmdline" ] || return 0
    found=
    set -f
    for word in $(cat "$PROC/cmdline" 2>/dev/null); do
        case $word in "$1="*) found=${word#*=} ;; esac
    done
    set +f
    printf '%s' "$found"
}

[ -n "$url" ] || url=$(cmdline_value dcportal.url)
[ -n "$token" ] || token=$(cmdline_value dcportal.token)
[ -n "$tenant" ] || tenant=$(cmdline_value dcportal.tenant)
[ -n "$hostname_arg" ] || hostname_arg=$(cmdline_value dcportal.hostname)

# Reading the machine ----------------------------------------------------------------------------

TAB=$(printf '\t')

# A file's content without surrounding blanks; nothing if it is missing or unreadable.
read_value() {
    [ -r "$1" ] || return 0
    cat "$1" 2>/dev/null | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'
}

# JSON string escaping: \ and " escaped, tabs and newlines spelled out, other control
# characters dropped (C locale: bytes, so non-ASCII text passes through untouched).
json_escape() {
    printf '%s' "$1" | tr -d '\000-\010\013-\037\177' |
        sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e "s/$TAB/\\\\t/g" |
        sed -e ':a' -e 'N' -e '$!ba' -e 's/\n/\\n/g'
}
js() { printf '"%s"' "$(json_escape "$1")"; }
js_or_null() { if [ -n "$1" ]; then js "$1"; else printf 'null'; fi; }
num_or_null() {
    if is_number "$1"; then printf '%s' "$1" | sed 's/^0*\([0-9]\)/\1/'; else printf 'null'; fi
}
bool_or_null() {
    case $1 in 1) printf 'true' ;; 0) printf 'false' ;; *) printf 'null' ;; esac
}

# "key": value pairs of an object, comma separated; call member KEY JSONVALUE.
members=
member() {
    if [ -n "$members" ]; then members="$members,"; fi
    members="$members$(js "$1"):$2"
}

have() { command -v "$1" >/dev/null 2>&1; }

dmidecode_value() {
    have dmidecode || return 0
    dmidecode -s "$1" 2>/dev/null | sed -e '/^#/d' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' |
        head -n 1
}

DMI=$SYS/class/dmi/id
uuid=$(read_value "$DMI/product_uuid")
serial=$(read_value "$DMI/product_serial")
vendor=$(read_value "$DMI/sys_vendor")
model=$(read_value "$DMI/product_name")
# Older kernels, or files only root may read: dmidecode (if installed) reads the same tables.
[ -n "$uuid" ] || uuid=$(dmidecode_value system-uuid)
[ -n "$serial" ] || serial=$(dmidecode_value system-serial-number)
[ -n "$vendor" ] || vendor=$(dmidecode_value system-manufacturer)
[ -n "$model" ] || model=$(dmidecode_value system-product-name)

members=
for key in product_version product_family product_sku board_vendor board_name board_version \
    board_serial board_asset_tag chassis_vendor chassis_type chassis_serial chassis_asset_tag \
    bios_vendor bios_version bios_date bios_release; do
    value=$(read_value "$DMI/$key")
    [ -n "$value" ] && member "$key" "$(js "$value")"
done
dmi_json="{$members}"

# CPUs: logical CPUs, model, sockets, cores (x86 names; ARM and POWER have fewer fields).
CPUINFO=$PROC/cpuinfo
cpu_field() {
    sed -n "s/^$1[[:space:]]*:[[:space:]]*//p" "$CPUINFO" 2>/dev/null | head -n 1
}
cpu_count=$(grep -c '^processor[[:space:]]*:' "$CPUINFO" 2>/dev/null)
cpu_model=$(cpu_field 'model name')
[ -n "$cpu_model" ] || cpu_model=$(cpu_field 'Processor')
[ -n "$cpu_model" ] || cpu_model=$(cpu_field 'cpu model')
[ -n "$cpu_model" ] || cpu_model=$(cpu_field 'cpu')
sockets=$(sed -n 's/^physical id[[:space:]]*:[[:space:]]*//p' "$CPUINFO" 2>/dev/null | sort -u |
    wc -l | tr -d ' ')
cores_per_socket=$(cpu_field 'cpu cores')
cores=
if is_number "$sockets" && [ "$sockets" -gt 0 ] && is_number "$cores_per_socket"; then
    cores=$((sockets * cores_per_socket))
else
    sockets=
fi
members=
member count "$(num_or_null "$cpu_count")"
member model "$(js_or_null "$cpu_model")"
member sockets "$(num_or_null "$sockets")"
member cores "$(num_or_null "$cores")"
cpu_json="{$members}"

mem_kb=$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\)[[:space:]]*kB.*/\1/p' "$PROC/meminfo" \
    2>/dev/null | head -n 1)
mem_bytes=
is_number "$mem_kb" && mem_bytes=$((mem_kb * 1024))
memory_json="{$(js total_bytes):$(num_or_null "$mem_bytes")}"

# Disks: whole block devices with a size, not loop, RAM, device-mapper or software RAID.
disks=
for dev in "$SYS"/block/*; do
    [ -d "$dev" ] || continue
    name=${dev##*/}
    case $name in loop* | ram* | zram* | dm-* | md* | nbd* | fd* | sr*) continue ;; esac
    sectors=$(read_value "$dev/size")
    is_number "$sectors" && [ "$sectors" -gt 0 ] || continue
    members=
    member name "$(js "$name")"
    member size_bytes "$((sectors * 512))"
    member removable "$(bool_or_null "$(read_value "$dev/removable")")"
    member rotational "$(bool_or_null "$(read_value "$dev/queue/rotational")")"
    for key in model vendor serial wwid; do
        value=$(read_value "$dev/device/$key")
        [ -n "$value" ] || value=$(read_value "$dev/$key")
        [ -n "$value" ] && member "$key" "$(js "$value")"
    done
    [ -n "$disks" ] && disks="$disks,"
    disks="$disks{$members}"
done

# Network interfaces: physical ones first, so a bond or bridge that borrowed a MAC does not
# take it from its port; loopback, MAC-less and all-zero interfaces are left out. BOOTIF=
# (pxelinux IPAPPEND 2, or iPXE) on the kernel command line names the one the machine booted from.
bootif=$(cmdline_value BOOTIF | tr 'A-F-' 'a-f:')
case $bootif in ??:??:??:??:??:??:??) bootif=${bootif#??:} ;; esac
seen=" "
interfaces=
add_interfaces() {  # $1 = physical | virtual
    for dev in "$SYS"/class/net/*; do
        [ -d "$dev" ] || continue
        name=${dev##*/}
        [ "$name" = lo ] && continue
        if [ -e "$dev/device" ]; then kind=physical; else kind=virtual; fi
        [ "$kind" = "$1" ] || continue
        mac=$(read_value "$dev/bonding_slave/perm_hwaddr")
        [ -n "$mac" ] || mac=$(read_value "$dev/address")
        mac=$(printf '%s' "$mac" | tr 'A-F' 'a-f')
        case $mac in
            [0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]) ;;
            *) continue ;;
        esac
        [ "$mac" = 00:00:00:00:00:00 ] && continue
        case $seen in *" $mac "*) continue ;; esac
        seen="$seen$mac "
        driver=
        if [ -e "$dev/device/driver" ] && have readlink; then
            driver=$(readlink "$dev/device/driver" 2>/dev/null)
            driver=${driver##*/}
        fi
        members=
        member name "$(js "$name")"
        member mac "$(js "$mac")"
        if [ "$mac" = "$bootif" ]; then member boot true; fi
        member operstate "$(js_or_null "$(read_value "$dev/operstate")")"
        member speed_mbps "$(num_or_null "$(read_value "$dev/speed")")"
        member mtu "$(num_or_null "$(read_value "$dev/mtu")")"
        member driver "$(js_or_null "$driver")"
        member virtual "$([ "$kind" = virtual ] && echo true || echo false)"
        [ -n "$interfaces" ] && interfaces="$interfaces,"
        interfaces="$interfaces{$members}"
    done
}
add_interfaces physical
add_interfaces virtual

kernel_release=
machine=
if have uname; then
    kernel_release=$(uname -r 2>/dev/null)
    machine=$(uname -m 2>/dev/null)
fi

members=
member uuid "$(js_or_null "$uuid")"
member serial "$(js "$serial")"
member vendor "$(js "$vendor")"
member model "$(js "$model")"
[ -n "$hostname_arg" ] && member hostname "$(js "$hostname_arg")"
[ -n "$tenant" ] && member tenant "$(js "$tenant")"
member dmi "$dmi_json"
member cpu "$cpu_json"
member memory "$memory_json"
member disks "[$disks]"
member interfaces "[$interfaces]"
member kernel "{$(js release):$(js_or_null "$kernel_release"),$(js machine):$(js_or_null "$machine")}"
report="{$members}"

if [ "$dry_run" = 1 ]; then
    printf '%s\n' "$report"
    exit 0
fi

# Sending ----------------------------------------------------------------------------------------

case $PORTAL_REGISTER_URL in @@*) PORTAL_REGISTER_URL= ;; esac
[ -n "$url" ] || url=$PORTAL_REGISTER_URL
[ -n "$url" ] || die 2 "no portal URL: give --url, DCPORTAL_URL or dcportal.url="
case $url in
    http://* | https://*) ;;
    *) die 2 "the portal URL must start with http:// or https://: $url" ;;
esac
case $url in
    */api/*) ;;
    *) url="${url%/}/api/inventory/register/" ;;
esac
[ -n "$token" ] || die 2 "no token: give --token, DCPORTAL_TOKEN or dcportal.token="
case $token in
    *[!A-Za-z0-9_.-]*) die 2 "the token is malformed (letters, digits, _ . - only)" ;;
esac

if [ -z "$client" ]; then
    if have curl; then client=curl; elif have wget; then client=wget; fi
fi
case $client in
    curl | wget) have "$client" || die 2 "$client is not installed" ;;
    '') die 2 "neither wget nor curl is installed" ;;
    *) die 2 "--client must be wget or curl" ;;
esac

work=$(mktemp -d 2>/dev/null || mktemp -d "${TMPDIR:-/tmp}/dcportal-agent.XXXXXX") ||
    die 1 "cannot create a temporary directory"
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
printf '%s' "$report" >"$work/report.json" || die 1 "cannot write $work/report.json"

# A hard limit per attempt when `timeout SECS CMD` works (old busybox spelled it -t SECS).
limit=
if have timeout && timeout 5 true >/dev/null 2>&1; then limit="timeout $((timeout_s + 5))"; fi

# One attempt. Sets $code (HTTP status, or empty when the portal could not be reached) and
# leaves the answer in $work/response and any error text in $work/error.
post_curl() {
    # The token goes in a config file, not the command line other users could see.
    printf 'header = "Authorization: Bearer %s"\n' "$token" >"$work/curlrc"
    set -- -sS -o "$work/response" -w '%{http_code}' -K "$work/curlrc" \
        -H 'Content-Type: application/json' -A "dcportal-agent/$AGENT_VERSION" \
        --max-time "$timeout_s" --data-binary "@$work/report.json"
    [ "$insecure" = 1 ] && set -- "$@" -k
    code=$(curl "$@" "$url" 2>"$work/error" </dev/null)
    case $code in 000 | '') code= ;; esac
}

post_wget() {
    : >"$work/response"
    set -- -O "$work/response" -U "dcportal-agent/$AGENT_VERSION" \
        --header 'Content-Type: application/json' --header "Authorization: Bearer $token" \
        --post-file "$work/report.json"
    [ "$insecure" = 1 ] && set -- "$@" --no-check-certificate
    # shellcheck disable=SC2086 # $limit is a command and its argument
    if $limit wget "$@" "$url" 2>"$work/error" </dev/null; then
        code=200
        grep -q '"result":"created"' "$work/response" && code=201
        grep -q '"result":"held"' "$work/response" && code=202
        return
    fi
    # busybox: "server returned error: HTTP/1.1 401 Unauthorized";
    # GNU wget: "HTTP request sent, awaiting response... 401 Unauthorized" (the last one counts).
    code=$(sed -n -e 's/.*server returned error: HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' \
        -e 's/.*awaiting response\.\.\. \([0-9][0-9][0-9]\).*/\1/p' "$work/error" | tail -n 1)
}

json_field() {
    sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$work/response" 2>/dev/null | head -n 1
}

attempt=1
while :; do
    code=
    "post_$client"
    case $code in
        2??) break ;;
        '' | 429 | 5??) ;;  # unreachable, busy or broken for now: try again
        *) break ;;
    esac
    [ "$attempt" -ge "$retries" ] && break
    attempt=$((attempt + 1))
    sleep 5
done

message=$(json_field message)
case $code in
    201 | 200)
        printf '%s\n' "${message:-registered}"
        exit 0
        ;;
    202)
        say "${message:-held for review by an operator}"
        exit 0
        ;;
    2??)
        printf '%s\n' "${message:-reported (HTTP $code)}"
        exit 0
        ;;
    '')
        reason=$(head -n 3 "$work/error" 2>/dev/null | tr '\n' ' ')
        die 1 "cannot reach the portal at $url: ${reason:-no answer}"
        ;;
    401 | 403)
        die 1 "the portal refused the token (HTTP $code)${message:+: $message}"
        ;;
    404)
        die 1 "no registration endpoint at $url (HTTP 404)"
        ;;
    *)
        detail=$(head -c 2000 "$work/response" 2>/dev/null)
        die 1 "the portal refused the report (HTTP $code)${message:+: $message}${detail:+ $detail}"
        ;;
esac
