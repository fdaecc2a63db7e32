/** /v1/webhooks: subscriptions (config + API), the delivery log per endpoint, the dead-letter view and replay. */
import { HttpError, notFound } from '../errors.js';
import type { WebhookDispatcher } from '../webhooks/dispatcher.js';
import type { EndpointView, WebhookEndpoints } from '../webhooks/endpoints.js';
import type { WebhookStore } from '../webhooks/store.js';
import { route, type RouteSpec } from './route.js';
import { DeliveryBody, DeliveryList, DeliveryListQuery, DeliveryParams, EndpointBody, EndpointCreate, EndpointList, EndpointParams } from './schemas.js';

export interface WebhookRouteDeps {
  endpoints: WebhookEndpoints;
  store: WebhookStore;
  dispatcher: WebhookDispatcher;
}

/** The secret never leaves the gateway once set. */
const publicView = ({ secret: _secret, ...rest }: EndpointView) => rest;

export function webhookRoutes({ endpoints, store, dispatcher }: WebhookRouteDeps): RouteSpec[] {
  async function endpoint(id: string): Promise<EndpointView> {
    const found = await endpoints.get(id);
    if (!found) throw notFound('unknown_endpoint', `no webhook endpoint ${id}`);
    return found;
  }
  return [
    route({
      method: 'get',
      path: '/webhooks/endpoints',
      operationId: 'listWebhookEndpoints',
      summary: 'Webhook subscriptions (from config and from this API)',
      tag: 'Webhooks',
      scope: 'admin',
      responses: { 200: { description: 'Endpoints', schema: EndpointList } },
      handler: async () => ({ status: 200, body: { items: (await endpoints.list()).map(publicView) } }),
    }),
    route({
      method: 'post',
      path: '/webhooks/endpoints',
      operationId: 'createWebhookEndpoint',
      summary: 'Subscribe an endpoint (or replace an API-created one with the same id)',
      tag: 'Webhooks',
      scope: 'admin',
      body: EndpointCreate,
      responses: { 201: { description: 'Created', schema: EndpointBody }, 409: { description: 'The id belongs to a config endpoint' } },
      async handler({ body }) {
        if (endpoints.isFromConfig(body.id)) throw new HttpError(409, 'endpoint_in_config', `endpoint ${body.id} is defined in the config file`);
        await endpoints.put({ ...body, enabled: true });
        return { status: 201, body: publicView(await endpoint(body.id)) };
      },
    }),
    route({
      method: 'delete',
      path: '/webhooks/endpoints/:endpointId',
      operationId: 'deleteWebhookEndpoint',
      summary: 'Remove an API-created endpoint (its pending deliveries are dead-lettered when reached)',
      tag: 'Webhooks',
      scope: 'admin',
      params: EndpointParams,
      responses: { 204: { description: 'Removed' }, 404: { description: 'Unknown endpoint' }, 409: { description: 'Config endpoints can only be disabled' } },
      async handler({ params }) {
        if (endpoints.isFromConfig(params.endpointId)) throw new HttpError(409, 'endpoint_in_config', 'config endpoints can be disabled, not deleted');
        if (!(await endpoints.remove(params.endpointId))) throw notFound('unknown_endpoint', `no webhook endpoint ${params.endpointId}`);
        await dispatcher.sweep(params.endpointId);
        return { status: 204, body: null };
      },
    }),
    route({
      method: 'post',
      path: '/webhooks/endpoints/:endpointId/disable',
      operationId: 'disableWebhookEndpoint',
      summary: 'Stop delivering to an endpoint; its backlog is kept',
      tag: 'Webhooks',
      scope: 'admin',
      params: EndpointParams,
      responses: { 200: { description: 'Disabled', schema: EndpointBody } },
      async handler({ params, key }) {
        await endpoint(params.endpointId);
        await endpoints.setEnabled(params.endpointId, false, `disabled by api:${key.id}`);
        return { status: 200, body: publicView(await endpoint(params.endpointId)) };
      },
    }),
    route({
      method: 'post',
      path: '/webhooks/endpoints/:endpointId/enable',
      operationId: 'enableWebhookEndpoint',
      summary: 'Resume delivering to an endpoint (e.g. after a 410), starting with its backlog in order',
      tag: 'Webhooks',
      scope: 'admin',
      params: EndpointParams,
      responses: { 200: { description: 'Enabled', schema: EndpointBody } },
      async handler({ params }) {
        await endpoint(params.endpointId);
        await endpoints.setEnabled(params.endpointId, true);
        await dispatcher.sweep(params.endpointId);
        return { status: 200, body: publicView(await endpoint(params.endpointId)) };
      },
    }),
    route({
      method: 'get',
      path: '/webhooks/endpoints/:endpointId/deliveries',
      operationId: 'listWebhookDeliveries',
      summary: 'Delivery log of an endpoint, newest first: every attempt with status code, error and latency',
      tag: 'Webhooks',
      scope: 'admin',
      params: EndpointParams,
      query: DeliveryListQuery,
      responses: { 200: { description: 'Deliveries', schema: DeliveryList } },
      handler: async ({ params, query }) => ({ status: 200, body: { items: await store.listDeliveries({ endpointId: params.endpointId, limit: query.limit }) } }),
    }),
    route({
      method: 'get',
      path: '/webhooks/deliveries/:deliveryId',
      operationId: 'getWebhookDelivery',
      summary: 'One delivery with its attempts',
      tag: 'Webhooks',
      scope: 'admin',
      params: DeliveryParams,
      responses: { 200: { description: 'Delivery', schema: DeliveryBody }, 404: { description: 'Unknown (or expired) delivery' } },
      async handler({ params }) {
        const record = await store.delivery(params.deliveryId);
        if (!record) throw notFound('unknown_delivery', `no delivery ${params.deliveryId}`);
        return { status: 200, body: record };
      },
    }),
    route({
      method: 'get',
      path: '/webhooks/dead-letters',
      operationId: 'listWebhookDeadLetters',
      summary: 'Deliveries that failed for good (rejected, 410, or retries exhausted), newest first',
      tag: 'Webhooks',
      scope: 'admin',
      query: DeliveryListQuery,
      responses: { 200: { description: 'Dead deliveries', schema: DeliveryList } },
      handler: async ({ query }) => ({ status: 200, body: { items: await store.listDeliveries({ dead: true, limit: query.limit }) } }),
    }),
    route({
      method: 'post',
      path: '/webhooks/deliveries/:deliveryId/replay',
      operationId: 'replayWebhookDelivery',
      summary: 'Send a dead delivery again (same webhook-id), after what is pending for its conversation',
      tag: 'Webhooks',
      scope: 'admin',
      params: DeliveryParams,
      responses: { 202: { description: 'Queued again', schema: DeliveryBody }, 404: { description: 'Unknown delivery' }, 409: { description: 'Not dead' } },
      async handler({ params }) {
        const record = await store.delivery(params.deliveryId);
        if (!record) throw notFound('unknown_delivery', `no delivery ${params.deliveryId}`);
        if (record.status !== 'dead') throw new HttpError(409, 'not_dead', `delivery ${params.deliveryId} is ${record.status}`);
        return { status: 202, body: await dispatcher.replay(params.deliveryId) };
      },
    }),
  ];
}
