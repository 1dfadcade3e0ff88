#!/bin/bash
# Opens and closes one AMQP 0-9-1 connection with RABBITMQ_URL (amqp://user:password@host:port/vhost,
# the URL-encoded form of keybuzz-backend-credentials), as every AMQP client does first: protocol
# header, Connection.Start → Start-Ok (PLAIN), Tune → Tune-Ok, Open → Open-Ok, Close. Frames as in
# the AMQP 0-9-1 specification, section 4.2.3 (type, channel, size, payload, 0xCE).
# Part of the backend probe (scripts/probes/backend-probe.sh), which bounds it with `timeout`; bash
# for /dev/tcp, and dd/od (coreutils) for the binary frames. Prints one line: what was proven, or why not.
set -euo pipefail
export LC_ALL=C

url=${RABBITMQ_URL#amqp://}
userinfo=${url%@*}
address=${url##*@}
address=${address%%/*}
vhost=${url##*@}
vhost=${vhost#"$address"}
vhost=${vhost#/}
# URL decoding (%XX) of the user, the password and the vhost; an empty vhost is the default "/".
decode() { printf '%b' "${1//%/\\x}"; }
user=$(decode "${userinfo%%:*}")
password=$(decode "${userinfo#*:}")
vhost=$(decode "${vhost:-/}")
host=${address%:*}
port=${address##*:}
[[ $address == *:* ]] || port=5672

# Binary fields (big-endian) as printf %b escapes: \xHH reads at most two digits, so text may follow.
octet() { printf '\\x%02x' "$1"; }
short() { octet $(($1 >> 8 & 255)); octet $(($1 & 255)); }
long() { short $(($1 >> 16 & 65535)); short $(($1 & 65535)); }
shortstr() { octet "${#1}"; printf '%s' "$1"; }

# Sends one method frame on channel 0: class, method, then the arguments' bytes (printf escapes in $3, raw text lengths in $4).
send_method() {
  local class=$1 method=$2 arguments=$3 size=$4
  printf '%b' "$(octet 1)$(short 0)$(long $((4 + size)))$(short "$class")$(short "$method")$arguments$(octet 206)" >&3
}

# Reads one frame; sets `frame` to its payload's bytes (decimal) and checks it is method $1.$2.
expect_method() {
  local header size
  header=$(dd bs=1 count=7 status=none <&3 | od -An -tu1 -v | tr '\n' ' ')
  read -r -a fields <<<"$header"
  if [[ ${#fields[@]} -lt 7 ]]; then
    echo "the broker closed the connection before $3"
    exit 1
  fi
  size=$((fields[3] << 24 | fields[4] << 16 | fields[5] << 8 | fields[6]))
  read -r -a frame <<<"$(dd bs=1 count=$((size + 1)) status=none <&3 | od -An -tu1 -v | tr '\n' ' ')"
  local class=$((frame[0] << 8 | frame[1])) method=$((frame[2] << 8 | frame[3]))
  if [[ $class == 10 && $method == 50 ]]; then
    # Connection.Close: reply code, then the reply text (a short string).
    local code=$((frame[4] << 8 | frame[5])) text_length=${frame[6]} text=""
    for ((i = 7; i < 7 + text_length; i++)); do text+=$(printf '%b' "$(octet "${frame[i]}")"); done
    echo "the broker closed the connection before $3: $code $text"
    exit 1
  fi
  if [[ ${fields[0]} != 1 || $class != "$1" || $method != "$2" ]]; then
    echo "unexpected frame (type ${fields[0]}, method $class.$method) instead of $3"
    exit 1
  fi
}

if ! { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then
  echo "cannot connect to $host:$port (refused or unreachable)"
  exit 1
fi
printf 'AMQP\000\000\011\001' >&3
expect_method 10 10 "Connection.Start"

# Start-Ok: empty client properties, mechanism PLAIN, response "\0user\0password", locale en_US.
response_length=$((2 + ${#user} + ${#password}))
send_method 10 11 "$(long 0)$(shortstr PLAIN)$(long "$response_length")\\x00${user//\\/\\\\}\\x00${password//\\/\\\\}$(shortstr en_US)" \
  $((4 + 6 + 4 + response_length + 6))
expect_method 10 30 "Connection.Tune (the credentials were refused)"

# Tune-Ok: the broker's channel-max and frame-max, no heartbeat (the connection lives for seconds).
channel_max=$((frame[4] << 8 | frame[5]))
frame_max=$((frame[6] << 24 | frame[7] << 16 | frame[8] << 8 | frame[9]))
send_method 10 31 "$(short "$channel_max")$(long "$frame_max")$(short 0)" 8
send_method 10 40 "$(shortstr "${vhost//\\/\\\\}")$(octet 0)$(octet 0)" $((1 + ${#vhost} + 1 + 1))
expect_method 10 41 "Connection.Open-Ok on vhost $vhost"

send_method 10 50 "$(short 200)$(octet 0)$(short 0)$(short 0)" 7
expect_method 10 51 "Connection.Close-Ok"
echo "AMQP connection opened on vhost $vhost as $user"
