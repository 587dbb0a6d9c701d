#!/usr/bin/env bash
# Back up, or restore, what a dcportal installation cannot be rebuilt without:
#   database.dump     pg_dump --format=custom of DATABASE_URL: everything the portal knows,
#                     CA private keys and BMC/hypervisor passwords included (encrypted)
#   encryption.keys   the key file those secrets are encrypted with: a dump without it is
#                     worth little (no CA key, no BMC password can be read back)
#   dcportal.env      the environment file (secret key, service URLs and passwords)
#   SHA256SUMS        checked before anything is restored
# Redis is not backed up: it holds queues and counters only; housekeeping re-enqueues the
# queued jobs it loses.
#
#   backup.sh [--env-file FILE] [--dest DIR] [--keep N]
#       writes DIR/YYYYmmddTHHMMSSZ/ (default /var/backups/dcportal), mode 0700, files 0600;
#       keeps the newest N backups (default 14; 0 keeps all)
#   backup.sh --restore BACKUP_DIR [--env-file FILE]
#       restores into the database of FILE's DATABASE_URL, which must be empty (create it
#       first), and adds the backup's keys to FILE's key file (keys already there stay first)
#
# Run it as root or as the dcportal user (it reads the environment file and the key file).
# pg_dump and pg_restore must be at least the PostgreSQL server's major version.
set -euo pipefail
umask 077

env_file=/etc/dcportal/dcportal.env
dest=/var/backups/dcportal
keep=14
restore_from=

die() {
    echo "backup.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case $1 in
        --env-file) env_file=${2:?--env-file needs a file}; shift 2 ;;
        --dest) dest=${2:?--dest needs a directory}; shift 2 ;;
        --keep) keep=${2:?--keep needs a number}; shift 2 ;;
        --restore) restore_from=${2:?--restore needs a backup directory}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
[[ $keep =~ ^[0-9]+$ ]] || die "--keep takes a number, not $keep"
[ -r "$env_file" ] || die "cannot read $env_file"

# The value of NAME in the environment file, read as systemd reads it (not as a shell script:
# nothing in it is run or expanded).
env_value() {
    local name=$1 line value=
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line#"${line%%[![:space:]]*}"}
        case $line in
            "$name="*) value=${line#"$name="} ;;
        esac
    done <"$env_file"
    value=${value%"${value##*[![:space:]]}"}
    if [[ ${#value} -ge 2 && ${value:0:1} == "${value: -1}" && ${value:0:1} == [\"\'] ]]; then
        value=${value:1:${#value}-2}
    fi
    printf '%s' "$value"
}

# DATABASE_URL as libpq takes it, with its password moved to PGPASSWORD (not on a command
# line, where `ps` would show it). Sets DB_URI.
database_uri() {
    local url scheme rest authority path userinfo hostport user password
    url=$(env_value DATABASE_URL)
    [ -n "$url" ] || die "DATABASE_URL is not set in $env_file"
    scheme=${url%%://*}
    case $scheme in
        postgres | postgresql) ;;
        *) die "DATABASE_URL must be postgres://…" ;;
    esac
    rest=${url#*://}
    authority=${rest%%/*}
    path=${rest#"$authority"}
    if [[ $authority == *@* ]]; then
        userinfo=${authority%@*}
        hostport=${authority##*@}
        if [[ $userinfo == *:* ]]; then
            user=${userinfo%%:*}
            password=${userinfo#*:}
            # Percent-decoding: %40 -> @ (printf %b only turns \xHH into bytes here).
            password=${password//\\/\\\\}
            PGPASSWORD=$(printf '%b' "${password//%/\\x}")
            export PGPASSWORD
            authority="$user@$hostport"
        fi
    fi
    DB_URI="postgresql://$authority$path"
}

# The key file the portal reads: DCPORTAL_ENCRYPTION_KEY_FILE, else VAR_DIR/encryption.keys.
key_file() {
    local file var_dir
    file=$(env_value DCPORTAL_ENCRYPTION_KEY_FILE)
    if [ -z "$file" ]; then
        var_dir=$(env_value DCPORTAL_VAR_DIR)
        [ -n "$var_dir" ] || var_dir=/opt/dcportal/app/var
        file=$var_dir/encryption.keys
    fi
    printf '%s' "$file"
}

backup() {
    local stamp work final keys old
    database_uri
    keys=$(key_file)
    mkdir -p -- "$dest"
    chmod 0700 -- "$dest"
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    final=$dest/$stamp
    work=$dest/.$stamp.partial
    [ ! -e "$final" ] || die "$final exists already"
    rm -rf -- "$work"
    mkdir -m 0700 -- "$work"
    trap 'rm -rf -- "$work"' EXIT

    pg_dump --format=custom --compress=6 --file="$work/database.dump" --dbname="$DB_URI"
    # A dump that pg_restore cannot read is no backup.
    pg_restore --list "$work/database.dump" >/dev/null
    if [ -n "$(env_value DCPORTAL_ENCRYPTION_KEYS)" ]; then
        echo "backup.sh: the encryption keys are in DCPORTAL_ENCRYPTION_KEYS (in dcportal.env)"
    elif [ -r "$keys" ]; then
        cp -- "$keys" "$work/encryption.keys"
    else
        die "cannot read the encryption key file $keys: without it the backup is useless"
    fi
    cp -- "$env_file" "$work/dcportal.env"
    {
        echo "created: $stamp"
        echo "host: $(hostname)"
        echo "pg_dump: $(pg_dump --version)"
    } >"$work/INFO"
    chmod 0600 -- "$work"/*
    (cd -- "$work" && sha256sum -- * >SHA256SUMS && chmod 0600 SHA256SUMS)
    mv -- "$work" "$final"
    trap - EXIT
    echo "backup.sh: backup in $final"

    if [ "$keep" -gt 0 ]; then
        # Backup names sort by date; only directories named like one are ever removed.
        find "$dest" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*T[0-9]*Z' -printf '%f\n' \
            | sort -r | tail -n +"$((keep + 1))" | while IFS= read -r old; do
            rm -rf -- "${dest:?}/$old"
            echo "backup.sh: removed the old backup $dest/$old"
        done
    fi
}

restore() {
    local from=$restore_from keys relations merged line
    [ -f "$from/database.dump" ] || die "$from has no database.dump"
    (cd -- "$from" && sha256sum --check --quiet SHA256SUMS) || die "$from fails its SHA256SUMS"
    database_uri
    relations=$(psql --no-psqlrc --tuples-only --no-align --dbname="$DB_URI" --command \
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public'")
    [ "$relations" = 0 ] || die "the database of DATABASE_URL is not empty ($relations relations):
restore into a new database (createdb -O dcportal NAME) or drop and create this one first"

    if [ -f "$from/encryption.keys" ]; then
        keys=$(key_file)
        if [ -n "$(env_value DCPORTAL_ENCRYPTION_KEYS)" ]; then
            echo "backup.sh: keys come from DCPORTAL_ENCRYPTION_KEYS: add those of" \
                "$from/encryption.keys to it yourself"
        elif [ ! -e "$keys" ]; then
            install -m 0600 -- "$from/encryption.keys" "$keys"
            # The portal reads it as the dcportal user.
            if [ "$(id -u)" = 0 ] && id dcportal >/dev/null 2>&1; then
                chown dcportal:dcportal -- "$keys"
            fi
            echo "backup.sh: restored the encryption keys to $keys"
        else
            # Keep the keys there first (the newest encrypts) and add the backup's others:
            # every key decrypts, so both old and restored secrets stay readable.
            merged=$(mktemp "$keys.XXXXXX")
            cat -- "$keys" >"$merged"
            while IFS= read -r line || [ -n "$line" ]; do
                [ -n "$line" ] && [ "${line:0:1}" != "#" ] || continue
                grep -qxF -- "$line" "$keys" || printf '%s\n' "$line" >>"$merged"
            done <"$from/encryption.keys"
            if cmp -s -- "$merged" "$keys"; then
                rm -f -- "$merged"
            else
                cp -p -- "$keys" "$keys.before-restore"
                chmod 0600 -- "$merged"
                chown --reference="$keys" -- "$merged" 2>/dev/null || true
                mv -- "$merged" "$keys"
                echo "backup.sh: added the backup's keys to $keys (before: $keys.before-restore)"
            fi
        fi
    fi

    pg_restore --no-owner --no-privileges --exit-on-error --single-transaction \
        --dbname="$DB_URI" "$from/database.dump"
    echo "backup.sh: database restored from $from"
    echo "backup.sh: next: dcportal-manage migrate (if the code is newer), then start the services"
}

if [ -n "$restore_from" ]; then
    restore
else
    backup
fi
