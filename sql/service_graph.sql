-- service_graph(start, end): the edges between services in the spans that
-- started in [start, end), with Tempo's service-graph rules. The table
-- function of that name computes them with its own operator
-- (src/query/service_graph/), per trace; this SQL, with $start and $end
-- bound (timestamps), is the statement of the rules its tests hold it to.
--
-- An edge is one request:
--   * a client (or producer) span and its child server (or consumer) span:
--     connection_type '' ('messaging_system' when either side is a producer
--     or consumer);
--   * a client span naming a database (db.name or db.system, on the span or
--     its resource) and, by precedence, peer.service, server.address,
--     network.peer.address[:network.peer.port] or db.name: an edge to that
--     database, connection_type 'database', whether or not a child exists;
--   * a client span with no server child whose span attributes name a peer
--     (peer.service, then db.name, then db.system): an edge to that virtual
--     node, connection_type 'virtual_node';
--   * a root server span (no parent): an edge from the virtual node 'user',
--     connection_type 'virtual_node'.
-- An edge failed when either of its spans has status_code 'error'. Server
-- latency is the server span's duration (for a database, the client span's:
-- the database sends no span of its own); it is NULL for a virtual server
-- named by peer.service, as client latency is for the 'user' node.
WITH s AS (
    SELECT
        trace_id,
        span_id,
        parent_span_id,
        kind,
        service,
        duration_ns,
        status_code,
        coalesce(attributes['db.name'], resource_attributes['db.name']) AS db_name,
        coalesce(attributes['db.system'], resource_attributes['db.system']) AS db_system,
        coalesce(attributes['peer.service'], resource_attributes['peer.service']) AS peer_service,
        coalesce(attributes['server.address'], resource_attributes['server.address']) AS server_address,
        coalesce(attributes['network.peer.address'], resource_attributes['network.peer.address']) AS peer_address,
        coalesce(attributes['network.peer.port'], resource_attributes['network.peer.port']) AS peer_port,
        coalesce(attributes['peer.service'], attributes['db.name'], attributes['db.system']) AS peer_node
    FROM spans
    WHERE start_time >= $start AND start_time < $end
),
clients AS (
    SELECT
        *,
        db_name IS NOT NULL OR db_system IS NOT NULL AS is_db,
        CASE WHEN db_name IS NOT NULL OR db_system IS NOT NULL THEN coalesce(
            peer_service,
            server_address,
            CASE WHEN peer_address IS NOT NULL
                THEN peer_address || coalesce(':' || peer_port, '') END,
            db_name
        ) END AS db_server
    FROM s
    WHERE kind IN ('client', 'producer')
),
servers AS (
    SELECT * FROM s WHERE kind IN ('server', 'consumer')
),
paired AS (
    SELECT
        c.service AS client,
        v.service AS server,
        CASE WHEN c.kind = 'producer' OR v.kind = 'consumer'
            THEN 'messaging_system' ELSE '' END AS connection_type,
        v.duration_ns AS server_ns,
        c.duration_ns AS client_ns,
        c.status_code = 'error' OR v.status_code = 'error' AS failed
    FROM clients c
    JOIN servers v ON v.trace_id = c.trace_id AND v.parent_span_id = c.span_id
    WHERE c.db_server IS NULL
),
edges AS (
    SELECT * FROM paired
    UNION ALL
    SELECT
        service, db_server, 'database', duration_ns AS server_ns,
        duration_ns AS client_ns, status_code = 'error'
    FROM clients
    WHERE db_server IS NOT NULL
    UNION ALL
    SELECT
        c.service, c.peer_node, 'virtual_node',
        CASE WHEN c.is_db THEN c.duration_ns END AS server_ns, c.duration_ns AS client_ns,
        c.status_code = 'error'
    FROM clients c
    WHERE c.db_server IS NULL AND c.peer_node IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM servers v
          WHERE v.trace_id = c.trace_id AND v.parent_span_id = c.span_id
      )
    UNION ALL
    SELECT
        'user', service, 'virtual_node', duration_ns AS server_ns, CAST(NULL AS BIGINT) AS client_ns,
        status_code = 'error'
    FROM servers
    WHERE parent_span_id IS NULL
)
SELECT
    client,
    server,
    connection_type,
    count(*) AS request_count,
    count(*) FILTER (WHERE failed) AS failed_count,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY server_ns / 1e9) AS p50_seconds,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY server_ns / 1e9) AS p95_seconds,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY server_ns / 1e9) AS p99_seconds,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY client_ns / 1e9) AS client_p50_seconds,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY client_ns / 1e9) AS client_p95_seconds,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY client_ns / 1e9) AS client_p99_seconds
FROM edges
GROUP BY client, server, connection_type
