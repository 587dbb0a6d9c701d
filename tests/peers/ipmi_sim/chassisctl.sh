#!/bin/sh
# Called by ipmi_sim: chassisctl.sh <device> get <parm>... | set <parm> <value>...
# Keeps power and boot device in files beside this script. A node test may start or stop
# a QEMU guest where power goes to 1 or 0.
# (dcportal's copy also appends every "set" to chassis.log, for tests to see what the BMC did.)
DIR=$(dirname "$0")
dev=$1; op=$2; shift 2
case $op in
  get) for p in "$@"; do case $p in
        power) echo "power:$(cat "$DIR/power.state" 2>/dev/null || echo 0)";;
        boot) echo "boot:$(cat "$DIR/boot.state" 2>/dev/null || echo default)";;
       esac; done;;
  set) echo "$*" >> "$DIR/chassis.log"
       while [ $# -gt 1 ]; do case $1 in
        power) echo "$2" > "$DIR/power.state";;
        boot) echo "$2" > "$DIR/boot.state";;
        reset) :;;
       esac; shift 2; done;;
  *) echo "bad op"; exit 1;;
esac
exit 0
