# AMQP through the load balancer (components/data/rabbitmq/render.ts sets the KB_* variables above):
# the protocol header gets a Connection.Start method frame back (type 1, channel 0, class 10, method 10).
: "${KB_LB_ADDRESS:?}" "${KB_LB_PORT:?}"
probe() {
  # shellcheck disable=SC2016 # $1/$2 belong to the inner bash
  timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"; printf "AMQP\x00\x00\x09\x01" >&3; head -c 11 <&3' probe "$KB_LB_ADDRESS" "$KB_LB_PORT" 2>/dev/null | od -An -tx1 | tr -d ' \n'
}
connection_start() { [[ "$(probe || true)" =~ ^010000[0-9a-f]{8}000a000a$ ]]; }
kb_wait_until 120 2 "rabbitmq endpoint: no AMQP Connection.Start through $KB_LB_ADDRESS:$KB_LB_PORT" connection_start
echo "rabbitmq endpoint: AMQP answers through $KB_LB_ADDRESS:$KB_LB_PORT"
