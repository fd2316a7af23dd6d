#!/bin/sh
# Writes this pod's redis.conf and sentinel.conf into CONF_DIR (/conf, an emptyDir: Sentinel
# rewrites its file). The master is the one the Sentinels already know; on a first start, when none
# answers, it is pod 0. Every name is the pod's stable DNS name on the headless Service.
set -eu
conf=${CONF_DIR:-/conf}
domain="redis-sentinel-headless.$POD_NAMESPACE.svc.cluster.local"
self="$POD_NAME.$domain"
master=""
for i in 0 1 2; do
    answer=$(timeout 3 redis-cli -h "redis-sentinel-$i.$domain" -p 26379 \
        sentinel get-master-addr-by-name switchyard 2>/dev/null | head -n 1) || true
    if [ -n "$answer" ]; then master=$answer; break; fi
done
[ -n "$master" ] || master="redis-sentinel-0.$domain"
cat >"$conf/redis.conf" <<CONF
dir /data
appendonly yes
replica-announce-ip $self
CONF
[ "$master" = "$self" ] || echo "replicaof $master 6379" >>"$conf/redis.conf"
cat >"$conf/sentinel.conf" <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $self
sentinel monitor switchyard $master 6379 2
sentinel down-after-milliseconds switchyard 5000
sentinel failover-timeout switchyard 60000
CONF
echo "$self: master $master"
